/**
 * The replication listener: serves this node's log and snapshots to the paired node over mutual TLS.
 * Only the certificate pinned at pairing is accepted; without a peer, every connection is refused.
 */

import { X509Certificate } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';

import { listenTcp } from '../../common/listen.js';
import type { Logger } from '../../common/logger.js';
import { proto } from '../../../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../../../modules/protocol/framing.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import type { PeerRecord, ReplicationIdentityFiles } from '../peer.js';
import type { IndexStore } from '../store.js';

/** Largest replication request accepted, in bytes; requests are small. */
const MAX_REQUEST_BYTES = 64 * 1024;
/** Upper bounds on what one request may ask for. */
export const MAX_PULL_ENTRIES = 1000;
export const MAX_SNAPSHOT_PAIRS = 5000;
export const MAX_WAIT_MS = 5000;
/**
 * JSON bytes after which a pull or snapshot page stops adding entries or pairs. One log entry carries
 * at most one feed chunk (about 700 KB as base64) or one Observe batch, so a response stays well below
 * the puller's 256 MiB frame limit.
 */
export const RESPONSE_BUDGET_BYTES = 16 * 1024 * 1024;

export class ReplicationServer {
  readonly #server: Server;
  readonly #store: IndexStore;
  readonly #log: Logger;
  readonly #identity: ReplicationIdentityFiles;
  readonly #sockets = new Set<TLSSocket>();
  #peer: PeerRecord | undefined;
  #appendWaiters = new Set<() => void>();

  /** Highest sequence of this node's log the peer reported as applied. */
  peerAcknowledged = 0;
  /** Time of the last request from the peer, Unix ms; 0 when none. */
  lastRequestMs = 0;

  constructor(store: IndexStore, identity: ReplicationIdentityFiles, log: Logger) {
    this.#store = store;
    this.#identity = identity;
    this.#log = log.child({ component: 'replication-server' });
    this.#server = createServer(this.#contextOptions(undefined));
    this.#server.on('secureConnection', (socket: TLSSocket) => this.#accept(socket));
    this.#server.on('tlsClientError', (error: Error) => this.#log.warn({ err: error.message }, 'replication TLS handshake failed'));
    this.#server.on('error', (error) => this.#log.error({ err: error }, 'replication listener error'));
  }

  /** Wakes pulls that wait for new entries; the store calls this after each append. */
  notifyAppend(): void {
    const waiters = this.#appendWaiters;
    this.#appendWaiters = new Set();
    for (const wake of waiters) {
      wake();
    }
  }

  /** Pins `peer`'s certificate, or refuses everyone when undefined; open connections of a previous peer are closed. */
  setPeer(peer: PeerRecord | undefined): void {
    this.#peer = peer;
    this.#server.setSecureContext(this.#contextOptions(peer));
    for (const socket of this.#sockets) {
      socket.destroy();
    }
  }

  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await listenTcp(this.#server, host, port);
    this.#log.info(bound, 'replication listener ready');
    return bound;
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolveClosed) => this.#server.close(() => resolveClosed()));
    for (const socket of this.#sockets) {
      socket.destroy();
    }
    this.notifyAppend();
    await closed;
  }

  #contextOptions(peer: PeerRecord | undefined) {
    return {
      key: this.#identity.keyPem,
      cert: this.#identity.certificatePem,
      // Without a peer, trust only this node's own certificate, whose key no other node has.
      ca: peer?.certificatePem ?? this.#identity.certificatePem,
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3' as const,
    };
  }

  #accept(socket: TLSSocket): void {
    const presented = socket.getPeerX509Certificate();
    const pinned = this.#peer ? new X509Certificate(this.#peer.certificatePem) : undefined;
    if (!presented || !pinned || presented.fingerprint256 !== pinned.fingerprint256) {
      this.#log.warn({ remote: socket.remoteAddress, fingerprint: presented?.fingerprint256 }, 'replication client is not the pinned peer; closing');
      socket.destroy();
      return;
    }

    this.#sockets.add(socket);
    const log = this.#log.child({ peer: this.#peer!.nodeId, remote: `${socket.remoteAddress}:${socket.remotePort}` });
    log.info('peer connected for replication');
    const decoder = new FrameDecoder(MAX_REQUEST_BYTES);
    socket.on('close', () => {
      this.#sockets.delete(socket);
      log.info('peer replication connection closed');
    });
    socket.on('error', (error) => log.warn({ err: error.message }, 'replication connection error'));
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        log.warn({ err: (error as Error).message }, 'closing replication connection: bad frame');
        socket.destroy();
        return;
      }
      for (const frame of frames) {
        let request: impcdr.v1.ReplicationRequest;
        try {
          request = proto.ReplicationRequest.decode(frame);
        } catch {
          log.warn('closing replication connection: frame is not a ReplicationRequest');
          socket.destroy();
          return;
        }
        this.#handle(request).then(
          (body) => this.#send(socket, { requestId: request.requestId, ...body }),
          (error: unknown) => {
            log.error({ err: error }, 'replication request failed');
            this.#send(socket, { requestId: request.requestId, error: { code: 'ERR_REPLICATION_REQUEST', message: (error as Error).message } });
          },
        );
      }
    });
  }

  async #handle(request: impcdr.v1.ReplicationRequest): Promise<Partial<impcdr.v1.IReplicationResponse>> {
    this.lastRequestMs = Date.now();

    if (request.pull) {
      const pull = request.pull;
      const after = Number(pull.afterSequence ?? 0);
      const max = Math.min(Math.max(1, pull.maxEntries ?? 100), MAX_PULL_ENTRIES);
      this.peerAcknowledged = Math.max(this.peerAcknowledged, after);

      const first = await this.#store.readLog(after, max, RESPONSE_BUDGET_BYTES);
      let entries = first.entries;
      if (first.oldest > after + 1) {
        return { pull: { nodeId: this.#nodeIdOfSelf(), entries: [], headSequence: this.#store.logHead, truncated: true } };
      }
      const waitMs = Math.min(pull.waitMs ?? 0, MAX_WAIT_MS);
      if (entries.length === 0 && waitMs > 0) {
        await new Promise<void>((resolveWait) => {
          const timer = setTimeout(resolveWait, waitMs);
          this.#appendWaiters.add(() => {
            clearTimeout(timer);
            resolveWait();
          });
        });
        entries = (await this.#store.readLog(after, max, RESPONSE_BUDGET_BYTES)).entries;
      }
      return {
        pull: {
          nodeId: this.#nodeIdOfSelf(),
          entries: entries.map((entry) => ({
            sequence: entry.sequence,
            committedMs: entry.committedMs,
            putsJson: Buffer.from(entry.putsJson ?? JSON.stringify(entry.puts)),
          })),
          headSequence: this.#store.logHead,
          truncated: false,
        },
      };
    }

    if (request.snapshot) {
      const snapshot = request.snapshot;
      const max = Math.min(Math.max(1, snapshot.maxPairs ?? 1000), MAX_SNAPSHOT_PAIRS);
      const head = this.#store.logHead;
      const page = await this.#store.snapshotPage(Buffer.from(snapshot.afterKey ?? []).toString('utf8'), max, RESPONSE_BUDGET_BYTES);
      return {
        snapshot: {
          nodeId: this.#nodeIdOfSelf(),
          pairsJson: Buffer.from(JSON.stringify(page.pairs)),
          lastKey: Buffer.from(page.lastKey),
          done: page.done,
          headSequence: head,
        },
      };
    }

    return { error: { code: 'ERR_PROTO_UNKNOWN_MESSAGE_TYPE', message: 'replication request has no body this node knows' } };
  }

  #nodeIdOfSelf(): string {
    return new X509Certificate(this.#identity.certificatePem).subject.replace(/^CN=/, '');
  }

  #send(socket: TLSSocket, response: impcdr.v1.IReplicationResponse): void {
    if (!socket.destroyed) {
      socket.write(encodeFrame(proto.ReplicationResponse.encode(response).finish()));
    }
  }
}
