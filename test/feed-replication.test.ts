import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import { parseDmarcReport } from '../services/repository/feeds/dmarc.js';
import { preferredNode } from '../services/repository/feeds/refresh-schedule.js';
import { startFeedServer } from './helpers/feed-server.js';
import { cdrctl, removeNode, SHARED_DATA, type TestNode } from './helpers/node.js';
import { pairNodes, startTwoNodes } from './helpers/peers.js';

const HISTORY = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror', 'history');
/** Two DROP lists: 101.192.0.0/14 is only in the older one, 103.13.140.0/22 only in the newer one. */
const OLD_DROP = readFileSync(join(HISTORY, 'drop-2021-09-03.txt'));
const NEW_DROP = readFileSync(join(HISTORY, 'drop-2023-07-18.txt'));
const DMARC_REPORT = join(SHARED_DATA, 'dmarc', 'parsedmarc', 'extract_report', 'nice-input.xml.gz');

/** Refresh interval of the test feeds, the shortest a definition accepts. */
const INTERVAL_SECONDS = 60;
const FEED_TIMEOUT_MS = 2000;
/** Grace period of the node that is not preferred: the settings below, longer than the feed timeout. */
const GRACE_MS = 5000;
const FEED_SETTINGS = ['feeds:', `  fallbackGraceSeconds: ${GRACE_MS / 1000}`, '  fallbackGracePercent: 0'];

interface Pair {
  a: TestNode;
  b: TestNode;
}

/** Starts node-a and node-b, unpaired until `pair` pairs them. */
async function startNodes(): Promise<Pair> {
  return startTwoNodes({ extraConfig: ['node:', '  id: node-a', ...FEED_SETTINGS].join('\n') }, { extraConfig: ['node:', '  id: node-b', ...FEED_SETTINGS].join('\n') });
}

/** Stores each node as the other's peer, replicating directly over loopback. */
function pair({ a, b }: Pair): Promise<void> {
  return pairNodes(a, b);
}

async function stopNodes({ a, b }: Pair): Promise<void> {
  for (const node of [a, b]) {
    await node.stop();
    removeNode(node);
  }
}

/** Returns a feed id whose preferred node is `preferred`. */
function feedIdPreferring(preferred: 'node-a' | 'node-b', prefix: string): string {
  for (let index = 0; ; index += 1) {
    const id = `${prefix}-${index}`;
    if (preferredNode(id, 'node-a', 'node-b') === preferred) {
      return id;
    }
  }
}

function field(stdout: string, name: string): string {
  return new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(stdout)?.[1] ?? '';
}

async function status(node: TestNode, id: string): Promise<string> {
  return (await cdrctl(node, ['feeds', 'status', id])).stdout;
}

async function listedBy(node: TestNode, ip: string, feed: string): Promise<boolean> {
  const lookup = JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', ip])).stdout) as { listings: { source: string }[] };
  return lookup.listings.some((listing) => listing.source === feed);
}

async function messagesOf(node: TestNode, ip: string): Promise<number> {
  const lookup = JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', ip])).stdout) as { counters: Record<string, number> };
  return lookup.counters['messages'] ?? 0;
}

/** Polls until `check` returns true or `timeoutMs` passes, and returns the last result. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 20_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolveWait) => setTimeout(resolveWait, 250));
  }
  return check();
}

test('one fetch per interval across the pair', async (t) => {
  t.timeout(180_000);
  const nodes = await startNodes();
  const feedServer = await startFeedServer(OLD_DROP, '"2021"');
  const { url, state } = feedServer;
  try {
    const { a, b } = nodes;
    const id = feedIdPreferring('node-b', 'drop');

    // Added on node-a before pairing: node-b receives it in its first snapshot.
    const added = await cdrctl(a, ['feeds', 'add', id, url, 'iplist', '--refresh', String(INTERVAL_SECONDS), '--timeout', String(FEED_TIMEOUT_MS)]);
    t.is(added.code, 0, added.stdout + added.stderr);
    t.is(state.requests, 1);
    await pair(nodes);

    t.true(await eventually(async () => /^1,/.test(field(await status(b, id), 'version'))), 'node-b has version 1');
    t.true(await listedBy(b, '101.192.0.1', id), 'lookups on node-b use the replicated version');
    t.false(await listedBy(b, '103.13.140.1', id));
    const onB = await status(b, id);
    t.is(field(onB, 'preferred'), 'node-b (this node)');
    t.regex(field(onB, 'last success'), /ago by node-a$/);
    t.is(field(await status(a, id), 'preferred'), 'node-b');
    t.is(state.requests, 1, 'node-b loaded the version without fetching');

    // The next scheduled refresh is node-b's. node-a waits the grace period and finds it recorded.
    state.body = NEW_DROP;
    state.etag = '"2023"';
    t.true(await eventually(async () => state.requests >= 2, (INTERVAL_SECONDS + 20) * 1000), 'the scheduled refresh fetched');
    await new Promise((resolveWait) => setTimeout(resolveWait, GRACE_MS + 5000));
    t.is(state.requests, 2, 'one fetch for the interval, not one per node');
    t.regex(field(await status(a, id), 'last success'), /ago by node-b$/);
    t.regex(field(await status(b, id), 'last success'), /ago by node-b \(this node\)$/);

    // node-a did not fetch, and its lookups follow the version node-b imported.
    t.true(await eventually(async () => listedBy(a, '103.13.140.1', id)), 'node-a lists an entry only the new version has');
    t.false(await listedBy(a, '101.192.0.1', id));
    t.regex(field(await status(a, id), 'version'), /^2,/);

    // Removal on node-b replicates to node-a.
    t.is((await cdrctl(b, ['feeds', 'remove', id])).code, 0);
    t.true(await eventually(async () => !new RegExp(`^${id}\\t`, 'm').test((await cdrctl(a, ['feeds', 'list'])).stdout)), 'node-a no longer lists the feed');
    t.false(await listedBy(a, '103.13.140.1', id));
    const statusAfterRemoval = await cdrctl(a, ['feeds', 'status', id]);
    t.is(statusAfterRemoval.code, 1);
    t.regex(statusAfterRemoval.stderr, new RegExp(`no feed with id "${id}"`));

    // A later add of the same id wins over the tombstone on both nodes.
    t.is((await cdrctl(a, ['feeds', 'add', id, url, 'iplist', '--refresh', '0'])).code, 0);
    t.true(await eventually(async () => /^1,/.test(field(await status(b, id), 'version'))), 'node-b has the feed again');
    t.true(await listedBy(b, '103.13.140.1', id));
  } finally {
    feedServer.close();
    await stopNodes(nodes);
  }
});

test('other node fetches when preferred is down', async (t) => {
  t.timeout(180_000);
  const nodes = await startNodes();
  const feedServer = await startFeedServer(OLD_DROP, '"2021"');
  const { url, state } = feedServer;
  try {
    const { a, b } = nodes;
    await pair(nodes);
    const id = feedIdPreferring('node-b', 'drop-down');

    // Added on node-a after pairing: the definition reaches node-b through the log.
    const added = await cdrctl(a, ['feeds', 'add', id, url, 'iplist', '--refresh', String(INTERVAL_SECONDS), '--timeout', String(FEED_TIMEOUT_MS)]);
    t.is(added.code, 0, added.stdout + added.stderr);
    const addedMs = Date.now();
    t.true(await eventually(async () => /^1,/.test(field(await status(b, id), 'version'))), 'node-b has version 1');
    t.true(await listedBy(b, '101.192.0.1', id));

    // A DMARC report imported on node-a counts once on both nodes: node-b receives the counters, not a second import.
    const report = await parseDmarcReport(readFileSync(DMARC_REPORT), DMARC_REPORT);
    const sourceIp = report.records[0]!.sourceIp;
    const expected = report.records.filter((record) => record.sourceIp === sourceIp).reduce((sum, record) => sum + record.count, 0);
    t.is((await cdrctl(a, ['feeds', 'add', 'rua', DMARC_REPORT, 'dmarc', '--refresh', '0'])).code, 0);
    t.true(await eventually(async () => /^1,/.test(field(await status(b, 'rua'), 'version'))), 'node-b has the DMARC version');
    t.true(await eventually(async () => (await messagesOf(b, sourceIp)) === expected), 'node-b has the counts');
    t.is(await messagesOf(a, sourceIp), expected);
    t.is(await messagesOf(b, sourceIp), expected, 'not counted a second time on node-b');

    // With node-b gone, node-a fetches itself once the interval and its grace period have passed.
    await b.kill();
    state.body = NEW_DROP;
    state.etag = '"2023"';
    const deadlineMs = addedMs + INTERVAL_SECONDS * 1000 + GRACE_MS + 15_000;
    t.true(await eventually(async () => state.requests >= 2, deadlineMs - Date.now()), 'node-a fetched within interval and grace');
    t.true(await eventually(async () => listedBy(a, '103.13.140.1', id)));
    t.regex(field(await status(a, id), 'last success'), /ago by node-a \(this node\)$/);
    t.regex(field(await status(a, id), 'version'), /^2,/);
    t.is(state.requests, 2);
  } finally {
    feedServer.close();
    await stopNodes(nodes);
  }
});
