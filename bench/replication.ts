/**
 * Replication lag benchmark: two paired repositories on 127.0.0.1; one IMP sends Observe batches to
 * node A at a fixed rate; node B reports the commit-to-apply lag of the entries it pulled.
 *
 *     node dist/bench/replication.js [--rate BATCHES_PER_SECOND] [--seconds N]
 */

import { parseArgs } from 'node:util';

import { kindToWire } from '../modules/protocol/constants.js';
import { ControlClient } from '../modules/protocol/control-client.js';
import { connectReady, enroll, removeNode, startNode, type TestNode } from '../test/helpers/node.js';

async function control<T>(node: TestNode, action: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(node.socketPath);
  try {
    return await action(client);
  } finally {
    client.close();
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({ options: { rate: { type: 'string', default: '200' }, seconds: { type: 'string', default: '10' } } });
  const rate = Number(values.rate);
  const seconds = Number(values.seconds);

  const a = await startNode();
  const b = await startNode();
  try {
    const identityA = (await control(a, (client) => client.call({ identity: {} }))).identity!;
    const identityB = (await control(b, (client) => client.call({ identity: {} }))).identity!;
    await control(a, (client) =>
      client.call({ peerSet: { peer: { nodeId: identityB.nodeId, host: '127.0.0.1', replicationPort: b.replicationPort, certificatePem: identityB.certificatePem } } }),
    );
    await control(b, (client) =>
      client.call({ peerSet: { peer: { nodeId: identityA.nodeId, host: '127.0.0.1', replicationPort: a.replicationPort, certificatePem: identityA.certificatePem } } }),
    );

    const bundle = await enroll(a, 'bench-imp');
    const client = await connectReady(a, bundle, 'bench-imp');
    const intervalMs = 1000 / rate;
    const total = Math.round(rate * seconds);
    const started = Date.now();
    let sent = 0;
    const pending: Promise<unknown>[] = [];

    // Each batch carries 10 observations of distinct addresses, as a one-minute report of one IMP would.
    while (sent < total) {
      const due = started + sent * intervalMs;
      const wait = due - Date.now();
      if (wait > 0) {
        await new Promise((resolveWait) => setTimeout(resolveWait, wait));
      }
      sent += 1;
      const observations = Array.from({ length: 10 }, (_, i) => ({
        object: { kind: kindToWire('ip'), key: `198.18.${(sent * 10 + i) >> 8 & 255}.${(sent * 10 + i) & 255}` },
        intervalStartMs: Date.now(),
        counters: { messages: 1, ham: 1 },
      }));
      pending.push(client.request({ observe: { sequence: sent, observations } }));
      if (pending.length >= 64) {
        await pending.shift();
      }
    }
    await Promise.all(pending);
    const elapsed = (Date.now() - started) / 1000;

    // Wait until B reports no backlog twice in a row: it has applied everything A wrote. Concurrent
    // batches share one group commit and so one log entry, so entries are fewer than batches.
    const deadline = Date.now() + 30_000;
    let pair = (await control(b, (c) => c.call({ pairStatus: {} }))).pairStatus!;
    let idleChecks = 0;
    while (idleChecks < 2 && Date.now() < deadline) {
      await new Promise((resolveWait) => setTimeout(resolveWait, 300));
      pair = (await control(b, (c) => c.call({ pairStatus: {} }))).pairStatus!;
      idleChecks = Number(pair.backlog) === 0 ? idleChecks + 1 : 0;
    }

    const line = {
      batchesPerSecondOffered: rate,
      batchesPerSecondAchieved: Math.round(sent / elapsed),
      observationsPerBatch: 10,
      seconds,
      entriesApplied: Number(pair.entriesApplied),
      lagP50Ms: Number(pair.lagP50Ms),
      lagP99Ms: Number(pair.lagP99Ms),
    };
    process.stdout.write(`replication lag: ${JSON.stringify(line)}\n`);
    await client.close();
  } finally {
    for (const node of [a, b]) {
      await node.stop();
      removeNode(node);
    }
  }
}

await main();
