/**
 * Replication with the paired node: the listener that serves this node's log, the puller that applies
 * the peer's, and the trimming of the log once the peer has it.
 */

import type { Logger } from '../../common/logger.js';
import type { PeerRecord, ReplicationIdentityFiles } from '../peer.js';
import type { IndexStore, RemoteApplyResult } from '../store.js';
import { ReplicationPuller, type ReplicationState } from './puller.js';
import { ReplicationServer } from './server.js';

/** Interval between checks for log entries to trim. */
const TRIM_INTERVAL_MS = 30_000;

export interface ReplicatorOptions {
  store: IndexStore;
  identity: ReplicationIdentityFiles;
  nodeId: string;
  log: Logger;
  /** Log entries kept even when the peer has not applied them; older ones make the peer resync by snapshot. */
  logRetentionEntries: number;
  onApplied: (result: RemoteApplyResult) => void;
  onStateChange?: (state: ReplicationState) => void;
}

/** Replication figures for status displays. */
export interface ReplicationStatus {
  state: ReplicationState;
  lastContactMs: number;
  lagMs: number;
  /** Entries of the peer's log not yet applied here. */
  backlog: number;
  /** Entries of this node's log the peer has not applied yet. */
  outgoingBacklog: number;
  /** Median and 99th percentile lag over the last 10,000 entries applied, in ms. */
  lagP50Ms: number;
  lagP99Ms: number;
  entriesApplied: number;
}

export class Replicator {
  readonly #options: ReplicatorOptions;
  readonly #server: ReplicationServer;
  #puller: ReplicationPuller | undefined;
  #peer: PeerRecord | undefined;
  #trimTimer: NodeJS.Timeout | undefined;

  constructor(options: ReplicatorOptions) {
    this.#options = options;
    this.#server = new ReplicationServer(options.store, options.identity, options.log);
    options.store.onAppend = () => this.#server.notifyAppend();
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await this.#server.listen(host, port);
    this.#trimTimer = setInterval(() => {
      this.trimLog().catch((error: unknown) => this.#options.log.error({ err: error }, 'trimming the replication log failed'));
    }, TRIM_INTERVAL_MS);
    this.#trimTimer.unref();
    return bound;
  }

  /** Starts replicating with `peer`, or stops when undefined. A previous peer's puller is stopped first. */
  async setPeer(peer: PeerRecord | undefined): Promise<void> {
    await this.#puller?.stop();
    this.#puller = undefined;
    this.#peer = peer;
    this.#server.setPeer(peer);
    this.#server.peerAcknowledged = 0;

    if (peer) {
      this.#puller = new ReplicationPuller(this.#options.store, this.#options.identity, peer, this.#options.nodeId, this.#options.log, {
        onApplied: this.#options.onApplied,
        onStateChange: (state) => this.#options.onStateChange?.(state),
      });
      this.#puller.start();
    }
    this.#options.onStateChange?.(this.status().state);
  }

  status(): ReplicationStatus {
    const puller = this.#puller;
    return {
      state: puller?.state ?? 'unpaired',
      lastContactMs: Math.max(puller?.lastContactMs ?? 0, this.#server.lastRequestMs),
      lagMs: puller?.lagMs ?? 0,
      backlog: puller?.backlog ?? 0,
      outgoingBacklog: this.#peer ? Math.max(0, this.#options.store.logHead - this.#server.peerAcknowledged) : 0,
      ...lagPercentiles(puller?.lagSamples ?? []),
      entriesApplied: puller?.entriesApplied ?? 0,
    };
  }


  /**
   * Deletes log entries the peer has applied, and beyond `logRetentionEntries` entries also those it has
   * not: a peer that falls that far behind resyncs from a snapshot.
   */
  async trimLog(): Promise<number> {
    const store = this.#options.store;
    const head = store.logHead;
    const retained = head - this.#options.logRetentionEntries;
    const acknowledged = this.#peer ? this.#server.peerAcknowledged : 0;
    const through = Math.max(acknowledged, retained);
    if (through <= 0) {
      return 0;
    }
    const deleted = await store.trimLog(through);
    if (deleted > 0) {
      this.#options.log.info({ deleted, through, head }, 'trimmed the replication log');
    }
    return deleted;
  }

  async close(): Promise<void> {
    clearInterval(this.#trimTimer);
    await this.#puller?.stop();
    await this.#server.close();
  }
}

function lagPercentiles(samples: readonly number[]): { lagP50Ms: number; lagP99Ms: number } {
  const recent = samples.slice(-10_000).sort((a, b) => a - b);
  if (recent.length === 0) {
    return { lagP50Ms: 0, lagP99Ms: 0 };
  }
  const at = (fraction: number) => recent[Math.min(recent.length - 1, Math.floor(fraction * recent.length))]!;
  return { lagP50Ms: at(0.5), lagP99Ms: at(0.99) };
}
