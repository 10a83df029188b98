/**
 * The peer-lost and peer-regained notifications with two real paired repositories: node B is stopped
 * and started again while the standalone SNMP agent of node A sends traps to a real snmptrapd.
 */

import test from 'ava';

import { ControlClient } from '../modules/protocol/control-client.js';
import { removeNode, restartNode, startNode, type TestNode } from './helpers/node.js';
import { CuttableProxy } from './helpers/proxy.js';
import { freeUdpPort, NOC_USER, removePeer, startSnmpAgent, startSnmptrapd, TEST_ENGINE_ID } from './helpers/snmp.js';

async function identity(node: TestNode) {
  const client = await ControlClient.connect(node.socketPath);
  try {
    return (await client.call({ identity: {} })).identity!;
  } finally {
    client.close();
  }
}

async function setPeer(node: TestNode, peer: { nodeId: string; port: number; certificatePem: string }): Promise<void> {
  const client = await ControlClient.connect(node.socketPath);
  try {
    await client.call({ peerSet: { peer: { nodeId: peer.nodeId, host: '127.0.0.1', replicationPort: peer.port, certificatePem: peer.certificatePem } } });
  } finally {
    client.close();
  }
}

test('stopping the peer sends peer lost, then regained', async (t) => {
  const trapd = await startSnmptrapd();
  const agentPort = await freeUdpPort();
  const snmp = [
    'snmp:',
    '  mode: standalone',
    '  pollIntervalMs: 200',
    '  standalone:',
    `    port: ${agentPort}`,
    `    engineId: ${TEST_ENGINE_ID}`,
    '    users:',
    `      - name: ${NOC_USER.name}`,
    `        authPassphrase: ${NOC_USER.authPassphrase}`,
    `        privPassphrase: ${NOC_USER.privPassphrase}`,
    '    trapTargets:',
    '      - host: 127.0.0.1',
    `        port: ${trapd.port}`,
    `        user: ${NOC_USER.name}`,
  ].join('\n');

  const a = await startNode({ extraConfig: snmp });
  let b = await startNode();
  const toA = new CuttableProxy({ host: '127.0.0.1', port: a.replicationPort });
  const toB = new CuttableProxy({ host: '127.0.0.1', port: b.replicationPort });
  await toA.listen();
  await toB.listen();
  const agent = await startSnmpAgent(a.configPath, a.dir);
  try {
    const identityA = await identity(a);
    const identityB = await identity(b);
    await setPeer(a, { nodeId: identityB.nodeId!, port: toB.port, certificatePem: identityB.certificatePem! });
    await setPeer(b, { nodeId: identityA.nodeId!, port: toA.port, certificatePem: identityA.certificatePem! });
    await new Promise((resolveWait) => setTimeout(resolveWait, 1500));

    await b.stop();
    const lost = await trapd.waitFor('impCdrPeerLost', 20_000);
    t.true(lost.includes(`impCdrPeerNodeId.0 = STRING: ${identityB.nodeId}`), lost);
    t.regex(lost, new RegExp(`impCdrPeerAddress\\.0 = STRING: 127\\.0\\.0\\.1:${toB.port}`));
    t.regex(lost, /impCdrPeerState\.0 = INTEGER: (disconnected|connecting)/);

    b = await restartNode(b);
    toB.retarget({ host: '127.0.0.1', port: b.replicationPort });
    toA.retarget({ host: '127.0.0.1', port: a.replicationPort });
    const regained = await trapd.waitFor('impCdrPeerRegained', 20_000);
    t.true(regained.includes(`impCdrPeerNodeId.0 = STRING: ${identityB.nodeId}`), regained);
    t.regex(regained, /impCdrPeerState\.0 = INTEGER: (syncing|tailing)/);
  } finally {
    await agent.stop();
    await toA.close();
    await toB.close();
    for (const node of [a, b]) {
      await node.stop();
      removeNode(node);
    }
    await trapd.stop();
    removePeer(trapd);
  }
});
