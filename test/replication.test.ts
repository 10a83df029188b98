import { rmSync } from 'node:fs';

import test from 'ava';

import { ImpProtocolClient } from '../modules/protocol/client.js';
import { kindToWire, verdictFromWire } from '../modules/protocol/constants.js';
import { createSelfSignedCertificate } from '../services/repository/tls-material.js';
import { cdrctl, connectReady, enroll, removeNode, restartNode, startNode, type ClientBundle, type TestNode } from './helpers/node.js';
import { pairNodes, startTwoNodes, withControl } from './helpers/peers.js';
import { CuttableProxy } from './helpers/proxy.js';

/** Two nodes that reach each other only through proxies the test controls. */
interface Pair {
  a: TestNode;
  b: TestNode;
  toA: CuttableProxy;
  toB: CuttableProxy;
}

/** Stores each node's identity as the other's peer, with replication through the proxies. */
function pair(a: TestNode, b: TestNode, toA: CuttableProxy, toB: CuttableProxy): Promise<void> {
  return pairNodes(a, b, { toA: toA.port, toB: toB.port });
}

async function startPair(): Promise<Pair> {
  const { a, b } = await startTwoNodes();
  const toA = new CuttableProxy({ host: '127.0.0.1', port: a.replicationPort });
  const toB = new CuttableProxy({ host: '127.0.0.1', port: b.replicationPort });
  await toA.listen();
  await toB.listen();
  await pair(a, b, toA, toB);
  return { a, b, toA, toB };
}

async function stopPair(pairOfNodes: Pair): Promise<void> {
  await pairOfNodes.toA.close();
  await pairOfNodes.toB.close();
  for (const node of [pairOfNodes.a, pairOfNodes.b]) {
    await node.stop();
    removeNode(node);
  }
}

/** Enrolls the same IMP id on both nodes; each node has its own CA. */
async function bundles(pairOfNodes: Pair, impId: string): Promise<{ a: ClientBundle; b: ClientBundle }> {
  return { a: await enroll(pairOfNodes.a, impId), b: await enroll(pairOfNodes.b, impId) };
}

async function observe(client: ImpProtocolClient, sequence: number, key: string, messages: number, spam = 0): Promise<boolean> {
  const answer = await client.request({
    observe: { sequence, observations: [{ object: { kind: kindToWire('ip'), key }, intervalStartMs: Date.now(), counters: { messages, spam } }] },
  });
  return Boolean(answer.observeAck && !answer.observeAck.duplicate && answer.observeAck.applied === 1);
}

async function lookupMessages(client: ImpProtocolClient, keys: string[]): Promise<Map<string, { messages: number; spam: number; score: number; verdict: string }>> {
  const answer = await client.request({ lookup: { keys: keys.map((key) => ({ kind: kindToWire('ip'), key })) } });
  const result = new Map<string, { messages: number; spam: number; score: number; verdict: string }>();
  answer.lookupResponse!.results!.forEach((entry, index) => {
    const reputation = entry.reputation!;
    result.set(keys[index]!, {
      messages: Number(reputation.counters?.messages ?? 0),
      spam: Number(reputation.counters?.spam ?? 0),
      score: reputation.score ?? 0,
      verdict: verdictFromWire(reputation.verdict) ?? 'neutral',
    });
  });
  return result;
}

/** Polls until `check` returns true or `timeoutMs` passes; returns the last result. */
async function eventually(check: () => Promise<boolean>, timeoutMs = 15_000): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return true;
    await new Promise((resolveWait) => setTimeout(resolveWait, 100));
  }
  return check();
}

const KEYS = Array.from({ length: 20 }, (_, i) => `198.18.0.${i + 1}`);

test.serial('observation on one node appears on the other', async (t) => {
  const nodes = await startPair();
  try {
    const certificates = await bundles(nodes, 'imp-r1');
    const clientA = await connectReady(nodes.a, certificates.a, 'imp-r1');
    const clientB = await connectReady(nodes.b, certificates.b, 'imp-r1');

    // HelloAccepted lists the other node for failover.
    const peers = clientA.received[0]!.helloAccepted!.peers!;
    t.is(peers.length, 1);
    t.is(peers[0]!.port, nodes.b.port);

    t.true(await observe(clientA, 1, '198.18.1.1', 7, 7));
    const replicated = await eventually(async () => (await lookupMessages(clientB, ['198.18.1.1'])).get('198.18.1.1')!.messages === 7);
    t.true(replicated);

    const status = JSON.parse((await cdrctl(nodes.b, ['status', '--json'])).stdout) as {
      role: string;
      objects: Record<string, number>;
      replication: { state: string; peer: { nodeId: string } | null; entriesApplied: number };
    };
    t.is(status.role, 'paired');
    t.is(status.objects['ip'], 1);
    t.is(status.objects['network'], 1);
    t.is(status.replication.state, 'tailing');
    t.regex(status.replication.peer?.nodeId ?? '', /^node-[0-9a-f]{8}$/);
    t.true(status.replication.entriesApplied >= 1);

    const pairStatus = (await withControl(nodes.b, (client) => client.call({ pairStatus: {} }))).pairStatus!;
    t.is(pairStatus.replicationState, 'tailing');
    t.true(Number(pairStatus.lastContactMs) > 0);
    await clientA.close();
    await clientB.close();
  } finally {
    await stopPair(nodes);
  }
});

test.serial('IMP enrolled on one node fails over to the other', async (t) => {
  const nodes = await startPair();
  try {
    // Enrolled on A after pairing: the bundle trusts both CAs and B accepts A's client certificates.
    const bundle = await enroll(nodes.a, 'imp-failover');
    t.is(bundle.ca.match(/BEGIN CERTIFICATE/g)?.length, 2);
    const onA = await connectReady(nodes.a, bundle, 'imp-failover');
    const peer = onA.received[0]!.helloAccepted!.peers![0]!;
    t.true(await observe(onA, 1, '198.18.7.7', 4));
    await onA.close();

    const onB = await ImpProtocolClient.connect({ host: peer.host!, port: peer.port!, ...bundle });
    const hello = await onB.hello({ impId: 'imp-failover', clusterId: 'c', model: 'M300', oosVersion: '2.6', moduleVersion: '1' });
    t.truthy(hello.helloAccepted, hello.helloRejected?.message ?? '');
    t.true(await eventually(async () => (await lookupMessages(onB, ['198.18.7.7'])).get('198.18.7.7')!.messages === 4));
    await onB.close();

    // The replay window replicated with the data, so B returns the sequence the IMP continues above.
    const again = await ImpProtocolClient.connect({ host: peer.host!, port: peer.port!, ...bundle });
    const resumed = await again.hello({ impId: 'imp-failover', clusterId: 'c', model: 'M300', oosVersion: '2.6', moduleVersion: '1' });
    t.is(Number(resumed.helloAccepted?.lastSequence), 1);
    await again.close();

    // After unpairing, B no longer accepts certificates of A's CA.
    await withControl(nodes.b, (client) => client.call({ peerClear: {} }));
    await t.throwsAsync(async () => {
      const stranger = await ImpProtocolClient.connect({ host: peer.host!, port: peer.port!, ...bundle });
      await stranger.hello({ impId: 'imp-failover', clusterId: 'c', model: 'M300', oosVersion: '2.6', moduleVersion: '1' });
    });
  } finally {
    await stopPair(nodes);
  }
});

test.serial('partition heals to exact identical counts', async (t) => {
  const nodes = await startPair();
  try {
    const certificates = await bundles(nodes, 'imp-r2');
    const clientA = await connectReady(nodes.a, certificates.a, 'imp-r2');
    const imp3 = await enroll(nodes.b, 'imp-r3');
    const clientB = await connectReady(nodes.b, imp3, 'imp-r3');
    const expected = new Map(KEYS.map((key) => [key, 0]));
    let sequenceA = 0;
    let sequenceB = 0;

    const round = async (count: number) => {
      for (let i = 0; i < count; i++) {
        const key = KEYS[i % KEYS.length]!;
        if (await observe(clientA, ++sequenceA, key, 2)) expected.set(key, expected.get(key)! + 2);
        if (await observe(clientB, ++sequenceB, key, 3)) expected.set(key, expected.get(key)! + 3);
      }
    };

    await round(20);
    nodes.toA.cut();
    nodes.toB.cut();
    // Both nodes keep taking observations while they cannot reach each other.
    await round(40);
    const duringA = await lookupMessages(clientA, KEYS);
    const duringB = await lookupMessages(clientB, KEYS);
    t.notDeepEqual([...duringA.values()], [...duringB.values()], 'the partition separated the nodes');
    nodes.toA.heal();
    nodes.toB.heal();
    nodes.toA.delay(20);
    await round(20);

    const converged = await eventually(async () => {
      const onA = await lookupMessages(clientA, KEYS);
      const onB = await lookupMessages(clientB, KEYS);
      return KEYS.every((key) => onA.get(key)!.messages === expected.get(key) && onB.get(key)!.messages === expected.get(key));
    }, 30_000);
    t.true(converged);

    const onA = await lookupMessages(clientA, KEYS);
    const onB = await lookupMessages(clientB, KEYS);
    for (const key of KEYS) {
      t.is(onA.get(key)!.messages, expected.get(key)!, `${key} on A`);
      t.deepEqual(onA.get(key), onB.get(key), `${key} identical on both`);
    }
    await clientA.close();
    await clientB.close();
  } finally {
    await stopPair(nodes);
  }
});

test.serial('kill -9 of a paired node loses nothing', async (t) => {
  const nodes = await startPair();
  try {
    const imp = await enroll(nodes.a, 'imp-r4');
    const impOnB = await enroll(nodes.b, 'imp-r5');
    let clientA = await connectReady(nodes.a, imp, 'imp-r4');
    const clientB = await connectReady(nodes.b, impOnB, 'imp-r5');
    const expected = new Map(KEYS.map((key) => [key, 0]));
    let sequenceA = 0;

    // Both nodes take a stream; node A is killed in the middle of it.
    let killed = false;
    const streamA = (async () => {
      while (!killed) {
        const key = KEYS[sequenceA % KEYS.length]!;
        const ok = await observe(clientA, ++sequenceA, key, 1).catch(() => false);
        if (ok) {
          // An acknowledgement means the batch is durable, even one that arrives as the node dies.
          expected.set(key, expected.get(key)! + 1);
        } else {
          // A closed connection fails at once; yield so the test can go on.
          await new Promise((resolveWait) => setImmediate(resolveWait));
        }
      }
    })();
    for (let i = 0; i < 100; i++) {
      const key = KEYS[i % KEYS.length]!;
      if (await observe(clientB, i + 1, key, 10)) expected.set(key, expected.get(key)! + 10);
      if (i === 50) {
        const killing = nodes.a.kill();
        killed = true;
        await killing;
      }
    }
    await streamA;

    nodes.a = await restartNode(nodes.a);
    nodes.toA.retarget({ host: '127.0.0.1', port: nodes.a.replicationPort });
    clientA = await connectReady(nodes.a, imp, 'imp-r4');
    // The IMP resumes above the last sequence the restarted node applied.
    const resume = Number(clientA.received[0]!.helloAccepted!.lastSequence);
    t.true(resume > 0);
    for (let i = 1; i <= 20; i++) {
      const key = KEYS[i % KEYS.length]!;
      if (await observe(clientA, resume + i, key, 100)) expected.set(key, expected.get(key)! + 100);
    }

    const converged = await eventually(async () => {
      const onA = await lookupMessages(clientA, KEYS);
      const onB = await lookupMessages(clientB, KEYS);
      return KEYS.every((key) => onA.get(key)!.messages >= expected.get(key)! && onA.get(key)!.messages === onB.get(key)!.messages);
    }, 30_000);
    t.true(converged);

    const onA = await lookupMessages(clientA, KEYS);
    const total = KEYS.reduce((sum, key) => sum + expected.get(key)!, 0);
    const counted = KEYS.reduce((sum, key) => sum + onA.get(key)!.messages, 0);
    // Batches in flight at the kill may have been written without an acknowledgement: at most one per
    // request outstanding, of one message each.
    t.true(counted >= total, `counted ${counted} < acknowledged ${total}`);
    t.true(counted <= total + 1, `counted ${counted} > acknowledged ${total} + 1 in flight`);
    await clientA.close();
    await clientB.close();
  } finally {
    await stopPair(nodes);
  }
});

test.serial('replacement node converges to the survivor', async (t) => {
  const nodes = await startPair();
  let replacement: TestNode | undefined;
  try {
    const imp = await enroll(nodes.b, 'imp-r6');
    const clientB = await connectReady(nodes.b, imp, 'imp-r6');
    for (let i = 0; i < KEYS.length; i++) {
      t.true(await observe(clientB, i + 1, KEYS[i]!, i + 1, i + 1));
    }
    const impA = await enroll(nodes.a, 'imp-r7');
    const clientA = await connectReady(nodes.a, impA, 'imp-r7');
    t.true(await eventually(async () => (await lookupMessages(clientA, [KEYS[19]!])).get(KEYS[19]!)!.messages === 20));
    await clientA.close();
    await clientB.close();

    // Node B fails for good; a new node with an empty index takes its place next to A.
    await nodes.b.kill();
    rmSync(nodes.b.dir, { recursive: true, force: true });
    replacement = await startNode();
    const toReplacement = new CuttableProxy({ host: '127.0.0.1', port: replacement.replicationPort });
    await toReplacement.listen();
    await pair(nodes.a, replacement, nodes.toA, toReplacement);

    const impC = await enroll(replacement, 'imp-r8');
    const clientC = await connectReady(replacement, impC, 'imp-r8');
    const converged = await eventually(async () => {
      const onC = await lookupMessages(clientC, KEYS);
      return KEYS.every((key, i) => onC.get(key)!.messages === i + 1);
    });
    t.true(converged, 'data that came from the failed node reached the replacement through A');
    const onC = await lookupMessages(clientC, KEYS);
    t.is(onC.get(KEYS[9]!)!.spam, 10);
    const status = JSON.parse((await cdrctl(replacement, ['status', '--json'])).stdout) as { objects: Record<string, number> };
    t.is(status.objects['ip'], KEYS.length);
    await clientC.close();
    await toReplacement.close();
  } finally {
    await nodes.toA.close();
    await nodes.toB.close();
    await nodes.a.stop();
    removeNode(nodes.a);
    if (replacement) {
      await replacement.stop();
      removeNode(replacement);
    }
  }
});

test.serial('policy replicates, later write wins', async (t) => {
  const nodes = await startPair();
  try {
    const shown = (await cdrctl(nodes.a, ['policy', 'show'])).stdout.split('\n').slice(1).join('\n');
    const { writeFileSync } = await import('node:fs');
    const { join } = await import('node:path');
    const v2 = join(nodes.a.dir, 'v2.yaml');
    writeFileSync(v2, shown.replace('version: 1', 'version: 2').replace('minMessages: 5', 'minMessages: 1'));

    t.is((await cdrctl(nodes.a, ['policy', 'set', v2])).code, 0);
    t.true(await eventually(async () => /^# version 2,/.test((await cdrctl(nodes.b, ['policy', 'show'])).stdout)));

    const v3 = join(nodes.b.dir, 'v3.yaml');
    writeFileSync(v3, shown.replace('version: 1', 'version: 3'));
    t.is((await cdrctl(nodes.b, ['policy', 'set', v3])).code, 0);
    t.true(await eventually(async () => /^# version 3,/.test((await cdrctl(nodes.a, ['policy', 'show'])).stdout)));
    t.regex((await cdrctl(nodes.b, ['policy', 'show'])).stdout, /^# version 3,/);
  } finally {
    await stopPair(nodes);
  }
});

test.serial('peer with the wrong certificate gets nothing', async (t) => {
  const a = await startNode();
  const b = await startNode();
  try {
    const identityA = (await withControl(a, (client) => client.call({ identity: {} }))).identity!;
    const identityB = (await withControl(b, (client) => client.call({ identity: {} }))).identity!;
    // B pins a certificate issued to A's node id but with another key, so A's pulls are refused.
    const impostor = await createSelfSignedCertificate(identityA.nodeId!, 1);
    await withControl(a, (client) =>
      client.call({ peerSet: { peer: { nodeId: identityB.nodeId, host: '127.0.0.1', replicationPort: b.replicationPort, certificatePem: identityB.certificatePem } } }),
    );
    await withControl(b, (client) =>
      client.call({ peerSet: { peer: { nodeId: identityA.nodeId, host: '127.0.0.1', replicationPort: a.replicationPort, certificatePem: impostor.certificatePem } } }),
    );

    const imp = await enroll(b, 'imp-r9');
    const clientB = await connectReady(b, imp, 'imp-r9');
    t.true(await observe(clientB, 1, '198.18.9.9', 5));
    await new Promise((resolveWait) => setTimeout(resolveWait, 2000));

    const impA = await enroll(a, 'imp-r10');
    const clientA = await connectReady(a, impA, 'imp-r10');
    t.is((await lookupMessages(clientA, ['198.18.9.9'])).get('198.18.9.9')!.messages, 0);
    const stateA = (await withControl(a, (client) => client.call({ pairStatus: {} }))).pairStatus!;
    t.not(stateA.replicationState, 'tailing');
    t.true(b.output.some((line) => line.includes('not the pinned peer') || line.includes('replication TLS handshake failed')));
    await clientA.close();
    await clientB.close();
  } finally {
    for (const node of [a, b]) {
      await node.stop();
      removeNode(node);
    }
  }
});

test.serial('peer record is checked before it is stored', async (t) => {
  const node = await startNode();
  try {
    const error = await t.throwsAsync(withControl(node, (client) => client.call({ peerSet: { peer: { nodeId: 'Bad Id', host: '', replicationPort: 70000 } } })));
    t.is((error as { code?: string }).code, 'ERR_PEER_INVALID');
    t.regex(error!.message, /nodeId, host, replicationPort, certificatePem/);
    const status = (await withControl(node, (client) => client.call({ pairStatus: {} }))).pairStatus!;
    t.is(status.replicationState, 'unpaired');
    t.falsy(status.peer);
  } finally {
    await node.stop();
    removeNode(node);
  }
});
