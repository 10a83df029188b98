/**
 * The replication puller: connects to the paired node, copies its index once by snapshot when this
 * node has never applied its log, then tails the log. It reconnects with backoff. It writes only
 * through `IndexStore.applyRemote`, whose batches take turns with local writes one batch at a time.
 */

import { X509Certificate } from 'node:crypto';
import { connect, type TLSSocket } from 'node:tls';

import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { proto } from '../../../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../../../modules/protocol/framing.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import type { PeerRecord, ReplicationIdentityFiles } from '../peer.js';
import type { IndexStore, RemoteApplyResult } from '../store.js';

/** Replication states, as `cdrctl status` and the SNMP agent report them. */
export type ReplicationState = 'unpaired' | 'connecting' | 'syncing' | 'tailing' | 'disconnected';

const MAX_RESPONSE_BYTES = 256 * 1024 * 1024;
const PULL_ENTRIES = 500;
const PULL_WAIT_MS = 1000;
const SNAPSHOT_PAIRS = 2000;
const BACKOFF_MIN_MS = 200;
const BACKOFF_MAX_MS = 5000;
/** A request unanswered for this long means the link is dead; pulls wait at most PULL_WAIT_MS. */
const REQUEST_TIMEOUT_MS = 15_000;

export interface PullerCallbacks {
  /** Called after merged values were stored, with the objects whose counters changed. */
  onApplied: (result: RemoteApplyResult) => void;
  onStateChange: (state: ReplicationState) => void;
}

export class ReplicationPuller {
  readonly #store: IndexStore;
  readonly #identity: ReplicationIdentityFiles;
  readonly #peer: PeerRecord;
  readonly #nodeId: string;
  readonly #log: Logger;
  readonly #callbacks: PullerCallbacks;
  #socket: TLSSocket | undefined;
  #stopped = false;
  #loop: Promise<void> | undefined;
  #pending = new Map<number, { resolve: (response: impcdr.v1.ReplicationResponse) => void; reject: (error: unknown) => void }>();
  #nextRequestId = 1;

  state: ReplicationState = 'connecting';
  lastContactMs = 0;
  /** Time from the peer's commit to the local apply of the newest entry applied, in ms. */
  lagMs = 0;
  /** Entries of the peer's log not applied here yet, as of the last response. */
  backlog = 0;
  /** Lag of the newest entries applied, in ms; at most 10,000 are kept. */
  readonly lagSamples: number[] = [];
  entriesApplied = 0;

  constructor(store: IndexStore, identity: ReplicationIdentityFiles, peer: PeerRecord, nodeId: string, log: Logger, callbacks: PullerCallbacks) {
    this.#store = store;
    this.#identity = identity;
    this.#peer = peer;
    this.#nodeId = nodeId;
    this.#log = log.child({ component: 'replication-puller', peer: peer.nodeId, peerAddress: `${peer.host}:${peer.replicationPort}` });
    this.#callbacks = callbacks;
  }

  start(): void {
    this.#loop = this.#run();
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    this.#socket?.destroy();
    await this.#loop;
  }

  async #run(): Promise<void> {
    let backoffMs = BACKOFF_MIN_MS;
    while (!this.#stopped) {
      try {
        this.#setState('connecting');
        await this.#connect();
        backoffMs = BACKOFF_MIN_MS;
        await this.#replicate();
      } catch (error) {
        if (this.#stopped) {
          break;
        }
        this.#log.warn({ err: (error as Error).message, retryInMs: backoffMs }, 'replication link down; retrying');
        this.#setState('disconnected');
        this.#socket?.destroy();
        await new Promise((resolveWait) => setTimeout(resolveWait, backoffMs));
        backoffMs = Math.min(backoffMs * 2, BACKOFF_MAX_MS);
      }
    }
  }

  #setState(state: ReplicationState): void {
    if (this.state !== state) {
      this.state = state;
      this.#callbacks.onStateChange(state);
    }
  }

  #connect(): Promise<void> {
    const pinned = new X509Certificate(this.#peer.certificatePem);
    return new Promise((resolveConnect, rejectConnect) => {
      const socket = connect({
        host: this.#peer.host,
        port: this.#peer.replicationPort,
        key: this.#identity.keyPem,
        cert: this.#identity.certificatePem,
        ca: this.#peer.certificatePem,
        minVersion: 'TLSv1.3',
        servername: this.#peer.nodeId,
        // The peer is identified by its pinned certificate, not by a host name.
        checkServerIdentity: (_host, certificate) =>
          certificate.fingerprint256 === pinned.fingerprint256
            ? undefined
            : new CdrError('ERR_REPLICATION_PEER_MISMATCH', `peer presented certificate ${certificate.fingerprint256}, pinned ${pinned.fingerprint256}`),
      });
      this.#socket = socket;
      const decoder = new FrameDecoder(MAX_RESPONSE_BYTES);
      socket.on('data', (chunk: Buffer) => {
        try {
          for (const frame of decoder.push(chunk)) {
            const response = proto.ReplicationResponse.decode(frame);
            const pending = this.#pending.get(Number(response.requestId));
            this.#pending.delete(Number(response.requestId));
            pending?.resolve(response);
          }
        } catch (error) {
          this.#log.warn({ err: (error as Error).message }, 'bad frame from peer; reconnecting');
          socket.destroy();
        }
      });
      // A connection closed before the TLS handshake completes may end without an 'error' event. So
      // 'close' and a timer reject the attempt too, and a settled promise ignores the later calls.
      const timer = setTimeout(() => {
        rejectConnect(new CdrError('ERR_REPLICATION_LINK', `TLS handshake with the peer did not finish within ${REQUEST_TIMEOUT_MS} ms`));
        socket.destroy();
      }, REQUEST_TIMEOUT_MS);
      socket.on('close', () => {
        clearTimeout(timer);
        const error = new CdrError('ERR_REPLICATION_LINK', 'replication connection closed');
        this.#failPending(error);
        rejectConnect(error);
      });
      socket.on('error', (error) => {
        clearTimeout(timer);
        this.#failPending(error);
        rejectConnect(error);
      });
      socket.once('secureConnect', () => {
        clearTimeout(timer);
        resolveConnect();
      });
    });
  }

  #failPending(error: unknown): void {
    for (const pending of this.#pending.values()) {
      pending.reject(error);
    }
    this.#pending.clear();
  }

  #request(body: Omit<impcdr.v1.IReplicationRequest, 'requestId'>): Promise<impcdr.v1.ReplicationResponse> {
    const requestId = this.#nextRequestId++;
    // A socket the peer closed already emitted 'close', so a request written to it would wait for the timeout.
    if (!this.#socket || this.#socket.destroyed || !this.#socket.writable) {
      return Promise.reject(new CdrError('ERR_REPLICATION_LINK', 'replication connection closed'));
    }
    return new Promise((resolveRequest, rejectRequest) => {
      const timer = setTimeout(() => {
        this.#pending.delete(requestId);
        rejectRequest(new CdrError('ERR_REPLICATION_LINK', `peer did not respond within ${REQUEST_TIMEOUT_MS} ms`));
        this.#socket?.destroy();
      }, REQUEST_TIMEOUT_MS);
      this.#pending.set(requestId, {
        resolve: (response) => {
          clearTimeout(timer);
          resolveRequest(response);
        },
        reject: (error) => {
          clearTimeout(timer);
          rejectRequest(error);
        },
      });
      this.#socket!.write(encodeFrame(proto.ReplicationRequest.encode({ requestId, ...body }).finish()));
    });
  }

  async #replicate(): Promise<void> {
    let checkpoint = await this.#store.checkpoint(this.#peer.nodeId);
    // A peer whose log was never applied here may hold data it received from a node this one never
    // paired with, which its log does not carry: copy everything first.
    if (checkpoint === 0) {
      checkpoint = await this.#snapshot();
    }

    this.#setState('tailing');
    while (!this.#stopped) {
      const response = await this.#request({ pull: { nodeId: this.#nodeId, afterSequence: checkpoint, maxEntries: PULL_ENTRIES, waitMs: PULL_WAIT_MS } });
      this.lastContactMs = Date.now();
      if (response.error) {
        throw new CdrError('ERR_REPLICATION_LINK', `peer returned ${response.error.code}: ${response.error.message}`);
      }
      const pull = response.pull!;
      if (pull.truncated) {
        this.#log.warn({ checkpoint, head: pull.headSequence }, 'peer log was trimmed past this node\'s checkpoint; resyncing from a snapshot');
        checkpoint = await this.#snapshot();
        this.#setState('tailing');
        continue;
      }

      const entries = pull.entries ?? [];
      if (entries.length > 0) {
        const puts = entries.flatMap((entry) => JSON.parse(Buffer.from(entry.putsJson ?? []).toString('utf8')) as [string, unknown][]);
        const last = Number(entries[entries.length - 1]!.sequence);
        const result = await this.#store.applyRemote(this.#peer.nodeId, puts, last);
        const appliedMs = Date.now();
        for (const entry of entries) {
          this.#recordLag(appliedMs - Number(entry.committedMs));
        }
        checkpoint = last;
        this.#callbacks.onApplied(result);
      }
      this.backlog = Math.max(0, Number(pull.headSequence) - checkpoint);
    }
  }

  /** Copies every replicated key of the peer; returns the peer's log head at the start, to tail from. */
  async #snapshot(): Promise<number> {
    this.#setState('syncing');
    let afterKey = '';
    let head: number | undefined;
    let pairs = 0;
    const started = Date.now();

    for (;;) {
      const response = await this.#request({ snapshot: { nodeId: this.#nodeId, afterKey: Buffer.from(afterKey), maxPairs: SNAPSHOT_PAIRS } });
      this.lastContactMs = Date.now();
      if (response.error) {
        throw new CdrError('ERR_REPLICATION_LINK', `peer returned ${response.error.code}: ${response.error.message}`);
      }
      const page = response.snapshot!;
      head ??= Number(page.headSequence);
      const pagePairs = JSON.parse(Buffer.from(page.pairsJson ?? []).toString('utf8')) as [string, unknown][];
      if (pagePairs.length > 0) {
        this.#callbacks.onApplied(await this.#store.applyRemote(this.#peer.nodeId, pagePairs));
      }
      pairs += pagePairs.length;
      afterKey = Buffer.from(page.lastKey ?? []).toString('utf8');
      if (page.done) {
        break;
      }
    }

    // Entries up to the head read before the first page are covered by the snapshot or merge idempotently.
    await this.#store.applyRemote(this.#peer.nodeId, [], head);
    this.#log.info({ pairs, head, ms: Date.now() - started }, 'snapshot from peer applied');
    return head;
  }

  #recordLag(lagMs: number): void {
    this.lagMs = Math.max(0, lagMs);
    this.entriesApplied += 1;
    this.lagSamples.push(this.lagMs);
    if (this.lagSamples.length > 20_000) {
      this.lagSamples.splice(0, this.lagSamples.length - 10_000);
    }
  }
}
