/**
 * `cdrctl status [--json]`: node state, traffic, objects and connected IMPs.
 */

import { parseArgs } from 'node:util';

import type { ControlClient } from '../../../modules/protocol/control-client.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { EXIT_SUCCESS, withControl, type Command, type CommandContext } from '../command.js';

export const statusCommand: Command = {
  name: 'status',
  usage: ['status [--json]                       node state, traffic, objects and connected IMPs'],
  async run(context, args) {
    const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
    return withControl(context, (client) => status(context, client, values.json));
  },
};

async function status(context: CommandContext, client: ControlClient, json: boolean): Promise<number> {
  const { status } = await client.call({ status: {} });
  const { pairStatus } = await client.call({ pairStatus: {} });
  const replication = replicationToJson(pairStatus!);
  if (json) {
    context.stdout(`${JSON.stringify({ ...(statusToJson(status!) as object), replication }, null, 2)}\n`);
    return EXIT_SUCCESS;
  }

  const s = status!;
  const objects = s.objects!;
  const traffic = s.traffic!;
  const lines = [
    `node ${s.nodeId} (${s.role}), state ${s.state}, version ${s.softwareVersion}, up ${s.uptimeSeconds} s`,
    `IMP listener ${s.impListen}, policy version ${s.policyVersion}`,
    `objects: ip ${objects.ip}, network ${objects.network}, domain ${objects.domain}, user ${objects.user}; index ${s.indexBytes} bytes`,
    `traffic: ${traffic.observeBatches} Observe batches (${traffic.observations} observations, ${traffic.duplicateBatches} duplicates), ` +
      `${traffic.lookups} lookups (${traffic.lookupKeys} keys), ${traffic.errors} errors; cache ${traffic.cacheHits} hits, ${traffic.cacheMisses} misses`,
    replication.peer
      ? `peer ${replication.peer.nodeId} at ${replication.peer.host}:${replication.peer.replicationPort}, replication ${replication.state}, ` +
        `lag ${replication.lagMs} ms (p50 ${replication.lagP50Ms}, p99 ${replication.lagP99Ms}), backlog ${replication.backlog}`
      : 'peer: none (not paired)',
    `clients: ${(s.clients ?? []).length}`,
    ...(s.clients ?? []).map(
      (c) =>
        `  ${c.impId} (cluster ${c.clusterId}) from ${c.address}, ${c.model} OOS ${c.oosVersion}, since ` +
        `${new Date(Number(c.connectedSinceMs)).toISOString()}, ${c.observations} observations, ${c.lookups} lookups`,
    ),
  ];
  context.stdout(`${lines.join('\n')}\n`);
  return EXIT_SUCCESS;
}

/** Converts the status message to plain JSON with ISO times. */
export function statusToJson(status: impcdr.v1.IStatus): unknown {
  return {
    nodeId: status.nodeId,
    softwareVersion: status.softwareVersion,
    role: status.role,
    state: status.state,
    startedAt: new Date(Number(status.startedMs)).toISOString(),
    uptimeSeconds: Number(status.uptimeSeconds),
    impListen: status.impListen,
    policyVersion: status.policyVersion,
    objects: {
      ip: Number(status.objects?.ip ?? 0),
      network: Number(status.objects?.network ?? 0),
      domain: Number(status.objects?.domain ?? 0),
      user: Number(status.objects?.user ?? 0),
    },
    indexBytes: Number(status.indexBytes),
    traffic: Object.fromEntries(
      ['observeBatches', 'observations', 'duplicateBatches', 'lookups', 'lookupKeys', 'errors', 'cacheHits', 'cacheMisses'].map((field) => [
        field,
        Number((status.traffic as Record<string, unknown> | null)?.[field] ?? 0),
      ]),
    ),
    clients: (status.clients ?? []).map((client) => ({
      connectionId: client.connectionId,
      impId: client.impId,
      clusterId: client.clusterId,
      address: client.address,
      model: client.model,
      oosVersion: client.oosVersion,
      connectedSince: new Date(Number(client.connectedSinceMs)).toISOString(),
      observations: Number(client.observations),
      lookups: Number(client.lookups),
    })),
  };
}


/** Converts the pairing and replication state to plain JSON; `peer` is null when the node is not paired. */
export function replicationToJson(pair: impcdr.v1.IPairStatus) {
  const peer = pair.peer
    ? {
        nodeId: pair.peer.nodeId ?? '',
        host: pair.peer.host ?? '',
        replicationPort: pair.peer.replicationPort ?? 0,
        sshHostKeyFingerprint: pair.peer.sshHostKeyFingerprint ?? '',
        pairedAt: pair.peer.pairedMs ? new Date(Number(pair.peer.pairedMs)).toISOString() : null,
      }
    : null;
  return {
    state: pair.replicationState ?? 'unpaired',
    peer,
    lastContact: pair.lastContactMs ? new Date(Number(pair.lastContactMs)).toISOString() : null,
    lagMs: Number(pair.lagMs ?? 0),
    lagP50Ms: Number(pair.lagP50Ms ?? 0),
    lagP99Ms: Number(pair.lagP99Ms ?? 0),
    backlog: Number(pair.backlog ?? 0),
    entriesApplied: Number(pair.entriesApplied ?? 0),
  };
}
