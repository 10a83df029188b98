/**
 * Pairing two test repositories directly through their control sockets, without the SSH pairing
 * daemon: each node stores the other's replication identity as its peer.
 */

import { ControlClient } from '../../modules/protocol/control-client.js';
import { removeNode, startNode, type StartOptions, type TestNode } from './node.js';

/**
 * Starts two nodes. When the second fails to start, the first is stopped before the error is
 * raised, because a repository left running keeps the test worker from exiting.
 */
export async function startTwoNodes(optionsA: StartOptions = {}, optionsB: StartOptions = {}): Promise<{ a: TestNode; b: TestNode }> {
  const a = await startNode(optionsA);
  try {
    return { a, b: await startNode(optionsB) };
  } catch (error) {
    await a.stop();
    removeNode(a);
    throw error;
  }
}

/** Runs `action` with a control connection to `node`, and closes it afterwards. */
export async function withControl<T>(node: TestNode, action: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await ControlClient.connect(node.socketPath);
  try {
    return await action(client);
  } finally {
    client.close();
  }
}

/**
 * Stores each node as the other's peer on 127.0.0.1. `ports` gives the replication port each node
 * dials to reach the other, such as a proxy's; by default the other node's own port.
 */
export async function pairNodes(a: TestNode, b: TestNode, ports: { toA?: number; toB?: number } = {}): Promise<void> {
  const identityA = (await withControl(a, (client) => client.call({ identity: {} }))).identity!;
  const identityB = (await withControl(b, (client) => client.call({ identity: {} }))).identity!;
  for (const [node, identity, port] of [
    [a, identityB, ports.toB ?? b.replicationPort],
    [b, identityA, ports.toA ?? a.replicationPort],
  ] as const) {
    const peer = {
      nodeId: identity.nodeId,
      host: '127.0.0.1',
      replicationPort: port,
      certificatePem: identity.certificatePem,
      impHost: identity.impHost,
      impPort: identity.impPort,
      impCaPem: identity.impCaPem,
    };
    await withControl(node, (client) => client.call({ peerSet: { peer } }));
  }
}
