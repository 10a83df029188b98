import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { proto } from '../modules/protocol/constants.js';
import { ImpClient, parseNodeAddress, sessionToDeltas, type DroppedBatch, type SessionReport } from '../modules/imp-client/index.js';
import { Spool } from '../modules/imp-client/spool.js';
import { Aggregator } from '../modules/imp-client/aggregator.js';
import { parseConfig } from '../services/common/config.js';
import type { CdrError, ErrorCode } from '../services/common/errors.js';
import { freePort, waitFor } from './helpers/imp-client.js';
import { enroll, removeNode, startNode, type ClientBundle, type TestNode } from './helpers/node.js';

let node: TestNode;
let bundle: ClientBundle;
const folders: string[] = [];

test.before(async () => {
  node = await startNode();
  bundle = await enroll(node, 'imp-module');
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
  folders.forEach((folder) => rmSync(folder, { recursive: true, force: true }));
});

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'imp-client-test-'));
  folders.push(folder);
  return folder;
}

function newClient(stateDir: string, nodes: string[], overrides: Partial<ConstructorParameters<typeof ImpClient>[0]> = {}): ImpClient {
  return new ImpClient({
    nodes,
    tls: bundle,
    hello: { impId: 'imp-module', clusterId: 'cluster-test', model: 'M300', oosVersion: '2.6' },
    stateDir,
    backoff: { initialMs: 20, maxMs: 200 },
    ...overrides,
  });
}

const observation = (key: string, messages: number) => ({ object: { kind: proto.ObjectKind.OBJECT_KIND_IP, key }, intervalStartMs: 0, counters: { messages } });

test('spool holds exact maximum, drops one beyond', (t) => {
  const spool = new Spool(tempFolder(), { maxBatches: 2, maxBytes: 1_000_000 });
  const first = spool.add([observation('192.0.2.1', 1)]);
  const second = spool.add([observation('192.0.2.2', 1)]);
  const third = spool.add([observation('192.0.2.3', 1), observation('192.0.2.4', 1)]);

  t.true('stored' in first);
  t.true('stored' in second);
  t.true('dropped' in third);
  t.is('dropped' in third ? third.dropped.observations : 0, 2);
  t.regex('dropped' in third ? third.dropped.reason : '', /is full: 2 batches of at most 2/);
  t.is(spool.batchCount, 2);
  t.is(spool.lastSequence, 2);
});

test('spool byte limit is exact', (t) => {
  const size = proto.ObserveRequest.encode({ sequence: 1, observations: [observation('192.0.2.1', 1)] }).finish().length;
  const exact = new Spool(tempFolder(), { maxBatches: 10, maxBytes: size });
  t.true('stored' in exact.add([observation('192.0.2.1', 1)]));
  const below = new Spool(tempFolder(), { maxBatches: 10, maxBytes: size - 1 });
  t.true('dropped' in below.add([observation('192.0.2.1', 1)]));
  t.is(below.batchCount, 0);
});

test('spool reopens batches oldest first', (t) => {
  const folder = tempFolder();
  const spool = new Spool(folder, { maxBatches: 10, maxBytes: 1_000_000 });
  spool.add([observation('192.0.2.1', 1)]);
  spool.add([observation('192.0.2.2', 2)]);
  spool.add([observation('192.0.2.3', 3)]);
  spool.remove(2);

  const reopened = new Spool(folder, { maxBatches: 10, maxBytes: 1_000_000 });
  t.deepEqual(reopened.pending().map((batch) => batch.sequence), [1, 3]);
  t.is(reopened.lastSequence, 3);
  t.is(reopened.read(3).observations[0]?.object?.key, '192.0.2.3');
});

test('spool moves a corrupt batch aside', (t) => {
  const folder = tempFolder();
  writeFileSync(join(folder, `${'7'.padStart(20, '0')}.batch`), Buffer.from([0xff, 0xff, 0xff]));
  const spool = new Spool(folder, { maxBatches: 10, maxBytes: 1_000_000 });
  t.is(spool.batchCount, 0);
  t.is(spool.corrupt.length, 1);
  t.true(readdirSync(folder).includes(`${'7'.padStart(20, '0')}.batch.bad`));
});

test('spool rejects a bad sequence file', (t) => {
  const folder = tempFolder();
  writeFileSync(join(folder, 'sequence'), 'twelve\n');
  const error = t.throws(() => new Spool(folder, { maxBatches: 10, maxBytes: 1_000_000 })) as CdrError;
  t.is(error.code, 'ERR_IMPCLIENT_STATE');
});

test('aggregator sums per object and interval', (t) => {
  const aggregator = new Aggregator(60_000);
  aggregator.add('ip', '192.0.2.1', { messages: 1, spam: 1 }, 120_000);
  aggregator.add('ip', '192.0.2.1', { messages: 2 }, 179_999);
  aggregator.add('ip', '192.0.2.1', { messages: 5 }, 180_000);

  const closed = aggregator.take(180_000);
  t.is(closed.length, 1);
  t.is(closed[0]?.intervalStartMs, 120_000);
  t.deepEqual(closed[0]?.counters, { messages: 3, spam: 1 });
  t.is(aggregator.size, 1);
});

test('session maps to exact deltas', (t) => {
  const deltas = sessionToDeltas({ clientIp: '::ffff:192.0.2.10', envelopeSender: 'Bob@Example.ORG', fromDomain: 'example.org', label: 'spam', spf: 'fail', rcptAccepted: 2 });
  t.deepEqual(deltas, [
    { kind: 'ip', key: '192.0.2.10', counters: { connections: 1, messages: 1, rcptAccepted: 2, spam: 1, spfFail: 1 } },
    { kind: 'user', key: 'bob@example.org', counters: { messages: 1, rcptAccepted: 2, spam: 1, spfFail: 1 } },
    { kind: 'domain', key: 'example.org', counters: { messages: 1, rcptAccepted: 2, spam: 1, spfFail: 1 } },
  ]);
});

const badSessions: [string, unknown, ErrorCode][] = [
  ['missing clientIp', {}, 'ERR_IMPCLIENT_INVALID_REPORT'],
  ['hostname as clientIp', { clientIp: 'mail.example.org' }, 'ERR_IMPCLIENT_INVALID_REPORT'],
  ['octet above 255', { clientIp: '192.0.2.256' }, 'ERR_IMPCLIENT_INVALID_REPORT'],
  ['negative messages', { clientIp: '192.0.2.1', messages: -1 }, 'ERR_IMPCLIENT_INVALID_REPORT'],
  ['fractional recipients', { clientIp: '192.0.2.1', rcptAccepted: 1.5 }, 'ERR_IMPCLIENT_INVALID_REPORT'],
  ['string count', { clientIp: '192.0.2.1', rcptRejected: '3' }, 'ERR_IMPCLIENT_INVALID_REPORT'],
];
for (const [name, session, code] of badSessions) {
  test(`bad session: ${name}`, (t) => {
    const error = t.throws(() => sessionToDeltas(session as SessionReport)) as CdrError;
    t.is(error.code, code);
  });
}

const badNodes = ['127.0.0.1', '127.0.0.1:0', '127.0.0.1:65536', ':7300', '[::1:7300', 'host name:7300', ''];
for (const text of badNodes) {
  test(`bad node address ${JSON.stringify(text)}`, (t) => {
    const error = t.throws(() => parseNodeAddress(text)) as CdrError;
    t.is(error.code, 'ERR_CONFIG_INVALID');
  });
}

test('node address limits and IPv6', (t) => {
  t.deepEqual(parseNodeAddress('127.0.0.1:1'), { host: '127.0.0.1', port: 1 });
  t.deepEqual(parseNodeAddress('127.0.0.1:65535'), { host: '127.0.0.1', port: 65535 });
  t.deepEqual(parseNodeAddress('[::1]:7300'), { host: '::1', port: 7300 });
});

test('client without nodes is rejected', (t) => {
  const error = t.throws(() => newClient(tempFolder(), [])) as CdrError;
  t.is(error.code, 'ERR_IMPCLIENT_NO_NODE');
});

test.serial('reports arrive aggregated and exact', async (t) => {
  const client = newClient(tempFolder(), [`127.0.0.1:${node.port}`]);
  client.start();
  t.true(await client.waitConnected(5000));
  for (let index = 0; index < 25; index += 1) {
    client.report({ clientIp: '198.51.100.77', envelopeSender: `user${index % 3}@aggregate.example.com`, label: 'spam', rcptAccepted: 2 });
  }
  client.flush();
  await client.drain(5000);

  const stats = client.stats();
  t.is(stats.sessions, 25);
  t.is(stats.batchesAcknowledged, 1);
  t.is(stats.observationsApplied, 5);

  const [ip, domain] = await client.lookup([
    { kind: 'ip', key: '198.51.100.77' },
    { kind: 'domain', key: 'aggregate.example.com' },
  ]);
  t.is(Number(ip?.reputation?.counters?.connections), 25);
  t.is(Number(ip?.reputation?.counters?.messages), 25);
  t.is(Number(ip?.reputation?.counters?.rcptAccepted), 50);
  t.is(Number(ip?.reputation?.counters?.spam), 25);
  t.is(Number(domain?.reputation?.counters?.messages), 25);
  await client.stop();
});

test.serial('cached lookup saves the round trip', async (t) => {
  const client = newClient(tempFolder(), [`127.0.0.1:${node.port}`]);
  client.start();
  t.true(await client.waitConnected(5000));

  const first = await client.lookup([{ kind: 'ip', key: '198.51.100.78' }]);
  const second = await client.lookup([{ kind: 'ip', key: '::ffff:198.51.100.78' }]);
  t.false(first[0]?.cached);
  t.true(second[0]?.cached);
  t.deepEqual(client.stats().cache, { hits: 1, misses: 1, roundTrips: 1, roundTripsSaved: 1, pushes: 0 });
  await client.stop();
});

test.serial('pushed change replaces cached answer', async (t) => {
  const watcher = newClient(tempFolder(), [`127.0.0.1:${node.port}`]);
  watcher.start();
  t.true(await watcher.waitConnected(5000));
  const before = await watcher.lookup([{ kind: 'ip', key: '203.0.113.200' }]);
  t.is(before[0]?.reputation?.verdict, proto.Verdict.VERDICT_NEUTRAL);
  // The subscription is sent after the lookup response, so give it time to reach the repository.
  await new Promise((resolveWait) => setTimeout(resolveWait, 200));

  const reporter = newClient(tempFolder(), [`127.0.0.1:${node.port}`]);
  reporter.start();
  t.true(await reporter.waitConnected(5000));
  for (let index = 0; index < 60; index += 1) {
    reporter.report({ clientIp: '203.0.113.200', label: 'phish' });
  }
  reporter.flush();
  await reporter.drain(5000);
  await waitFor(() => watcher.stats().cache.pushes === 1, 5000, 'the ReputationChanged push');

  const after = await watcher.lookup([{ kind: 'ip', key: '203.0.113.200' }]);
  t.true(after[0]?.cached);
  t.is(after[0]?.reputation?.verdict, proto.Verdict.VERDICT_MALICIOUS);
  t.is(Number(after[0]?.reputation?.counters?.phish), 60);
  await watcher.stop();
  await reporter.stop();
});

test.serial('lookup without a node fails clearly', async (t) => {
  const client = newClient(tempFolder(), [`127.0.0.1:${await freePort()}`]);
  client.start();
  const error = (await t.throwsAsync(client.lookup([{ kind: 'ip', key: '192.0.2.1' }]))) as CdrError;
  t.is(error.code, 'ERR_IMPCLIENT_UNAVAILABLE');
  await client.stop(0);
});

test.serial('spool waits for a node to appear', async (t) => {
  const port = await freePort();
  const stateDir = tempFolder();
  const client = newClient(stateDir, [`127.0.0.1:${port}`]);
  client.start();
  client.report({ clientIp: '198.51.100.90', label: 'ham' });
  client.report({ clientIp: '198.51.100.90', label: 'ham' });
  client.flush();
  await new Promise((resolveWait) => setTimeout(resolveWait, 300));
  t.is(client.stats().spoolBatches, 1);
  t.true(client.stats().connectFailures >= 2);

  const late = await startNode({ port });
  try {
    const lateBundle = await enroll(late, 'imp-module');
    // The late node has its own CA, so the client gets a bundle of that node's CA.
    const other = newClient(stateDir, [`127.0.0.1:${port}`], { tls: lateBundle });
    await client.stop(0);
    other.start();
    await other.drain(10_000);
    const [answer] = await other.lookup([{ kind: 'ip', key: '198.51.100.90' }]);
    t.is(Number(answer?.reputation?.counters?.messages), 2);
    t.is(Number(answer?.reputation?.counters?.ham), 2);
    t.is(other.stats().spoolBatches, 0);
    await other.stop();
  } finally {
    await late.stop();
    removeNode(late);
  }
});

test.serial('full spool emits dropped batches', async (t) => {
  const client = newClient(tempFolder(), [`127.0.0.1:${await freePort()}`], { spool: { maxBatches: 1, maxBytes: 1_000_000 } });
  const dropped: DroppedBatch[] = [];
  client.on('dropped', (batch: DroppedBatch) => dropped.push(batch));
  client.start();
  client.report({ clientIp: '192.0.2.31' });
  client.flush();
  client.report({ clientIp: '192.0.2.32' });
  client.report({ clientIp: '192.0.2.33' });
  client.flush();

  t.is(dropped.length, 1);
  t.is(dropped[0]?.observations, 2);
  t.is(client.stats().batchesDropped, 1);
  t.is(client.stats().observationsDropped, 2);
  t.is(client.stats().spoolBatches, 1);
  await client.stop(0);
});

test.serial('rejected Hello is retried, not fatal', async (t) => {
  const client = newClient(tempFolder(), [`127.0.0.1:${node.port}`], {
    hello: { impId: 'someone-else', clusterId: 'cluster-test', model: 'M300', oosVersion: '2.6' },
  });
  client.start();
  await waitFor(() => client.stats().connectFailures >= 2, 5000, 'two rejected handshakes');
  t.false(await client.waitConnected(100));
  t.is(client.stats().connects, 0);
  await client.stop(0);
});

test('report before start is rejected', (t) => {
  const client = newClient(tempFolder(), ['127.0.0.1:7300']);
  const error = t.throws(() => client.report({ clientIp: '192.0.2.1' })) as CdrError;
  t.is(error.code, 'ERR_IMPCLIENT_STOPPED');
});

const configCases: [string, string, ErrorCode | undefined][] = [
  ['interval 1 s is the minimum', 'impClient:\n  intervalSeconds: 1\n', undefined],
  ['interval 3600 s is the maximum', 'impClient:\n  intervalSeconds: 3600\n', undefined],
  ['interval 0 s', 'impClient:\n  intervalSeconds: 0\n', 'ERR_CONFIG_INVALID'],
  ['interval 3601 s', 'impClient:\n  intervalSeconds: 3601\n', 'ERR_CONFIG_INVALID'],
  ['node without port', 'impClient:\n  nodes: ["127.0.0.1"]\n', 'ERR_CONFIG_INVALID'],
  ['IPv6 node', 'impClient:\n  nodes: ["[::1]:7300"]\n', undefined],
  ['empty node list', 'impClient:\n  nodes: []\n', 'ERR_CONFIG_INVALID'],
  ['spool of 0 batches', 'impClient:\n  spoolMaxBatches: 0\n', 'ERR_CONFIG_INVALID'],
  ['unknown impClient key', 'impClient:\n  spool: 5\n', 'ERR_CONFIG_UNKNOWN_KEY'],
  ['policyd port 65536', 'policyd:\n  port: 65536\n', 'ERR_CONFIG_INVALID'],
  ['empty malicious action', 'policyd:\n  malicious: ""\n', 'ERR_CONFIG_INVALID'],
  ['lookup timeout 9 ms', 'policyd:\n  lookupTimeoutMs: 9\n', 'ERR_CONFIG_INVALID'],
  ['lookup timeout 10 ms', 'policyd:\n  lookupTimeoutMs: 10\n', undefined],
];
for (const [name, text, code] of configCases) {
  test(`client config: ${name}`, (t) => {
    if (code === undefined) {
      t.notThrows(() => parseConfig(text, '/etc/imp-cdr/imp.yaml'));
      return;
    }
    const error = t.throws(() => parseConfig(text, '/etc/imp-cdr/imp.yaml')) as CdrError;
    t.is(error.code, code);
  });
}

test('client config defaults bind loopback', (t) => {
  const config = parseConfig('', '/etc/imp-cdr/imp.yaml');
  t.deepEqual(config.impClient.nodes, ['127.0.0.1:7300']);
  t.is(config.policyd.host, '127.0.0.1');
  t.is(config.policyd.port, 10040);
  t.is(config.policyd.unavailable, 'DUNNO');
});
