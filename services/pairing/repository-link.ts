/**
 * The pairing daemon's access to its own repository: one control-socket connection per request, so a
 * repository restart between two pairings needs no reconnection logic.
 */

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { ControlClient } from '../../modules/protocol/control-client.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';

export class RepositoryLink {
  readonly #socketPath: string;

  constructor(socketPath: string) {
    this.#socketPath = socketPath;
  }

  async identity(): Promise<impcdr.v1.IReplicationIdentity> {
    return (await this.#call({ identity: {} })).identity!;
  }

  async pairStatus(): Promise<impcdr.v1.IPairStatus> {
    return (await this.#call({ pairStatus: {} })).pairStatus!;
  }

  /** Stores `peer`, replacing any previous one. @throws CdrError from the repository, such as `ERR_PEER_INVALID` */
  async setPeer(peer: impcdr.v1.IPeerRecord): Promise<impcdr.v1.IPairStatus> {
    return (await this.#call({ peerSet: { peer } })).pairStatus!;
  }

  async clearPeer(): Promise<impcdr.v1.IPairStatus> {
    return (await this.#call({ peerClear: {} })).pairStatus!;
  }

  async #call(body: Omit<impcdr.v1.IControlRequest, 'requestId'>): Promise<impcdr.v1.ControlResponse> {
    const client = await ControlClient.connect(this.#socketPath);
    try {
      return await client.call(body);
    } finally {
      client.close();
    }
  }
}

/** Address of the peer's pairing daemon, kept beside the repository's peer record for unpairing. */
export interface PeerEndpoint {
  nodeId: string;
  host: string;
  port: number;
}

/** Reads the peer's pairing endpoint, or returns undefined when none is stored or the file is unreadable. */
export function loadPeerEndpoint(path: string): PeerEndpoint | undefined {
  if (!existsSync(path)) return undefined;
  try {
    const value = JSON.parse(readFileSync(path, 'utf8')) as Partial<PeerEndpoint>;
    if (typeof value.nodeId !== 'string' || typeof value.host !== 'string' || !Number.isInteger(value.port)) return undefined;
    return { nodeId: value.nodeId, host: value.host, port: value.port! };
  } catch {
    return undefined;
  }
}

/** Writes the peer's pairing endpoint atomically (temporary file, then rename). */
export function savePeerEndpoint(path: string, endpoint: PeerEndpoint): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, `${JSON.stringify(endpoint, null, 2)}\n`, { mode: 0o644 });
  renameSync(temporary, path);
}

export function removePeerEndpoint(path: string): void {
  rmSync(path, { force: true });
}
