import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { kindToWire, proto } from '../modules/protocol/constants.js';
import { ImpClient } from '../modules/imp-client/index.js';
import { runReplay } from '../modules/imp-client/replay/runner.js';
import { freePort, startSiblingNode, waitFor } from './helpers/imp-client.js';
import { countByIp, filesWithClientIp } from './helpers/mail.js';
import { cdrctl, connectReady, enroll, removeNode, restartNode, ROOT, SHARED_DATA, startNode, type ClientBundle, type TestNode } from './helpers/node.js';

const execFileAsync = promisify(execFile);
const REPLAY_MAIN = join(ROOT, 'dist', 'modules', 'imp-client', 'bin', 'imp-cdr-replay.js');
const PHISHING = join(SHARED_DATA, 'email', 'phishing_pot');

const nodes: TestNode[] = [];
const folders: string[] = [];

test.after.always(async () => {
  for (const node of nodes) {
    await node.stop();
    removeNode(node);
  }
  folders.forEach((folder) => rmSync(folder, { recursive: true, force: true }));
});

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'imp-client-failover-'));
  folders.push(folder);
  return folder;
}

/** Sums the `connections` counter of each IP over `targets`, one Lookup per node. */
async function connectionsByIp(targets: TestNode[], bundle: ClientBundle, impId: string, ips: string[]): Promise<Map<string, number>> {
  const totals = new Map<string, number>(ips.map((ip) => [ip, 0]));
  for (const target of targets) {
    const client = await connectReady(target, bundle, impId);
    const answer = await client.request({ lookup: { keys: ips.map((ip) => ({ kind: kindToWire('ip'), key: ip })) } });
    answer.lookupResponse!.results!.forEach((result, index) => {
      const ip = ips[index]!;
      totals.set(ip, totals.get(ip)! + Number(result.reputation?.counters?.connections ?? 0));
    });
    await client.close();
  }
  return totals;
}

test.serial('failover mid-replay loses and doubles nothing', async (t) => {
  const first = await startNode();
  nodes.push(first);
  const second = await startSiblingNode(first);
  nodes.push(second);
  const bundles = tempFolder();
  await cdrctl(first, ['client', 'enroll', 'imp-failover', '--out', join(bundles, 'imp-failover')]);
  const bundle = await enroll(first, 'imp-reader');

  const files = filesWithClientIp(PHISHING).slice(0, 120);
  const expected = countByIp(files);
  let killedAt = 0;

  const summary = await runReplay({
    inputs: files.map((file) => file.path),
    label: 'phish',
    nodes: [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`],
    bundlesDir: bundles,
    imps: 1,
    rate: 400,
    stateDir: tempFolder(),
    lookups: false,
    intervalMs: 50,
    // One batch in flight at a time, so the kill below never lands between a write and its acknowledgement.
    maxInFlightBatches: 1,
    onAcknowledged: (_impId, batch) => {
      if (batch.sequence === 3 && batch.node === `127.0.0.1:${first.port}`) {
        killedAt = batch.sequence;
        first.process.kill('SIGKILL');
      }
    },
  });

  t.is(killedAt, 3);
  t.is(summary.sessionsReported, 120);
  t.is(summary.batchesDropped, 0);
  t.is(summary.batchesLeftInSpool, 0);
  t.true(summary.batchesAcknowledged > 3);

  const restarted = await restartNode(first);
  nodes[0] = restarted;
  const totals = await connectionsByIp([restarted, second], bundle, 'imp-reader', [...expected.keys()]);
  t.deepEqual(Object.fromEntries(totals), Object.fromEntries(expected));
  const onSecond = await connectionsByIp([second], bundle, 'imp-reader', [...expected.keys()]);
  t.true([...onSecond.values()].reduce((sum, count) => sum + count, 0) > 0, 'the second node received the rest');
});

test.serial('spool survives kill -9 of the IMP', async (t) => {
  const port = await freePort();
  const bundles = tempFolder();
  const state = tempFolder();
  const files = filesWithClientIp(PHISHING).slice(200, 260);

  // No node listens on `port` yet, so every batch waits in the spool.
  const seed = await startNode();
  nodes.push(seed);
  await cdrctl(seed, ['client', 'enroll', 'imp-crash', '--out', join(bundles, 'imp-crash')]);
  const bundle = await enroll(seed, 'imp-reader');
  const args = ['--node', `127.0.0.1:${port}`, '--bundles', bundles, '--state', state, '--no-lookup', '--interval-ms', '50', '--rate', '100', '--label', 'phish'];
  const child = spawn(process.execPath, [REPLAY_MAIN, ...args, ...files.map((file) => file.path)], { stdio: 'ignore' });
  const spoolDir = join(state, 'imp-crash');
  const batchFiles = () => {
    try {
      return readdirSync(spoolDir).filter((name) => name.endsWith('.batch'));
    } catch {
      return [];
    }
  };
  await waitFor(() => batchFiles().length >= 3, 20_000, 'three spooled batches');
  child.kill('SIGKILL');
  await new Promise((resolveExit) => child.once('exit', resolveExit));

  // The spool contents are exactly what must arrive, so the test decodes them without the module.
  const expected = new Map<string, number>();
  for (const name of batchFiles()) {
    const batch = proto.ObserveRequest.decode(readFileSync(join(spoolDir, name)));
    for (const entry of batch.observations) {
      if (entry.object?.kind === proto.ObjectKind.OBJECT_KIND_IP) {
        expected.set(entry.object.key!, (expected.get(entry.object.key!) ?? 0) + Number(entry.counters?.connections ?? 0));
      }
    }
  }
  t.true(expected.size > 0);
  const spooled = batchFiles().length;

  const target = await startSiblingNode(seed, port);
  nodes.push(target);
  const resumed = await execFileAsync(process.execPath, [REPLAY_MAIN, ...args, '--json']);
  const summary = JSON.parse(resumed.stdout) as { itemsRead: number; batchesAcknowledged: number; batchesLeftInSpool: number };
  t.is(summary.itemsRead, 0);
  t.is(summary.batchesLeftInSpool, 0);
  t.is(summary.batchesAcknowledged, spooled);
  t.deepEqual(batchFiles(), []);

  const totals = await connectionsByIp([target], bundle, 'imp-reader', [...expected.keys()]);
  t.deepEqual(Object.fromEntries(totals), Object.fromEntries(expected));
});

test.serial('stalled node left after missed Heartbeat', async (t) => {
  const first = await startNode();
  nodes.push(first);
  const second = await startSiblingNode(first);
  nodes.push(second);
  const bundle = await enroll(first, 'imp-heartbeat');
  const client = new ImpClient({
    nodes: [`127.0.0.1:${first.port}`, `127.0.0.1:${second.port}`],
    tls: bundle,
    hello: { impId: 'imp-heartbeat', clusterId: 'cluster-test', model: 'M300', oosVersion: '2.6' },
    stateDir: tempFolder(),
    heartbeatIntervalMs: 200,
    requestTimeoutMs: 500,
    connectTimeoutMs: 500,
    backoff: { initialMs: 20, maxMs: 200 },
  });
  const connected: string[] = [];
  client.on('connected', (event: { node: string }) => connected.push(event.node));
  client.start();
  await waitFor(() => connected.length === 1, 5000, 'the first connection');
  t.is(connected[0], `127.0.0.1:${first.port}`);

  // SIGSTOP keeps the socket open but nothing responds, as with a hung node or a dropped link.
  first.process.kill('SIGSTOP');
  try {
    await waitFor(() => connected.length === 2, 10_000, 'failover to the second node');
    t.is(connected[1], `127.0.0.1:${second.port}`);
    client.report({ clientIp: '198.51.100.120' });
    client.flush();
    await client.drain(5000);
    t.is(client.stats().batchesAcknowledged, 1);
  } finally {
    first.process.kill('SIGCONT');
    await client.stop(0);
  }
});
