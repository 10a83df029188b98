/**
 * The IMP Client IMP-CDR Module: what an IMP runs to report sessions to the repository and look up
 * reputation. It aggregates reports per object and interval, stores each batch in a disk spool before
 * sending it, removes it only after its acknowledgement, fails over between repository nodes, and
 * serves lookups from a cache kept current by `Subscribe` pushes.
 *
 * Lifecycle: `new` → `start()` → `running` → `stop()` → `stopped`. Reports made while no node is
 * reachable wait in the spool; the spool survives a crash of the IMP process.
 */

import { EventEmitter } from 'node:events';

import { pino } from 'pino';

import { ImpProtocolClient } from '../protocol/client.js';
import { kindFromWire, kindToWire, type ObjectKindName } from '../protocol/constants.js';
import type { CounterValues } from '../protocol/counters.js';
import type { impcdr } from '../protocol/generated/messages.js';
import { CdrError } from '../../services/common/errors.js';
import type { Logger } from '../../services/common/logger.js';
import { Aggregator } from './aggregator.js';
import { cacheId, LookupCache, type CacheCounters } from './cache.js';
import { backoffDelay, formatNodeAddress, parseNodeAddress, type BackoffOptions, type NodeAddress } from './nodes.js';
import { normaliseIp, sessionToDeltas, type SessionReport } from './session.js';
import { Spool, type CorruptBatch, type DroppedBatch } from './spool.js';

export const MODULE_VERSION = '0.1.0';

export interface ImpClientOptions {
  /** Repository nodes, as objects or "HOST:PORT" strings, tried in order. The handshake adds the peers it returns. */
  nodes: (NodeAddress | string)[];
  /** PEM texts of the bundle that `cdrctl client enroll` writes. */
  tls: { ca: string; cert: string; key: string };
  /** Fields of Hello; `impId` must equal the common name of the client certificate. */
  hello: { impId: string; clusterId: string; model: string; oosVersion: string; moduleVersion?: string };
  /** Folder of the spool and the sequence file; one folder per IMP id. */
  stateDir: string;
  /** Width of an aggregation interval, in milliseconds. @defaultValue 60000 */
  intervalMs?: number;
  /** Spool bounds. @defaultValue 10000 batches, 256 MiB */
  spool?: { maxBatches: number; maxBytes: number };
  /** Maximum observations per batch; the repository's announced limit applies when it is lower. @defaultValue 10000 */
  maxBatchObservations?: number;
  /** Maximum Observe requests awaiting acknowledgement on one connection. @defaultValue 8 */
  maxInFlightBatches?: number;
  /** Reconnect backoff after every node failed once. @defaultValue 250 ms doubling to 30 s */
  backoff?: BackoffOptions;
  /** Time for the TLS connection and the handshake, in milliseconds. @defaultValue 5000 */
  connectTimeoutMs?: number;
  /** Time for an acknowledgement or a lookup response, in milliseconds. A late acknowledgement closes the connection. @defaultValue 10000 */
  requestTimeoutMs?: number;
  /** Entries of the lookup cache. @defaultValue 100000 */
  cacheMaxEntries?: number;
  /**
   * Time between Heartbeats on an open connection, in milliseconds. A Heartbeat unanswered within
   * `requestTimeoutMs` closes the connection, so a node that stopped responding is left. @defaultValue 30000
   */
  heartbeatIntervalMs?: number;
  logger?: Logger;
}

export type ImpClientState = 'new' | 'running' | 'stopping' | 'stopped';

/** An acknowledged batch, as the `acknowledged` event carries it. */
export interface AcknowledgedBatch {
  sequence: number;
  node: string;
  observations: number;
  applied: number;
  rejected: number;
  duplicate: boolean;
}

export interface LookupKey {
  kind: ObjectKindName;
  key: string;
}

/** One lookup result: the reputation, or the repository's reason for rejecting the key. */
export interface LookupAnswer {
  kind: ObjectKindName;
  key: string;
  reputation?: impcdr.v1.IReputation;
  error?: { code: number; message: string };
  /** True when the reputation came from the cache. */
  cached: boolean;
}

export interface ImpClientStats {
  state: ImpClientState;
  /** Node of the open connection, "HOST:PORT", or undefined. */
  node: string | undefined;
  nodes: string[];
  sessions: number;
  batchesSpooled: number;
  batchesAcknowledged: number;
  batchesDuplicate: number;
  batchesDropped: number;
  observationsSpooled: number;
  observationsApplied: number;
  observationsRejected: number;
  observationsDropped: number;
  spoolBatches: number;
  spoolBytes: number;
  connects: number;
  connectFailures: number;
  /**
   * Application bytes (frames) written to and read from the TLS sockets of every connection, Hello
   * included. TLS adds its handshake and 22 bytes per record (TLS 1.3: 5 header, 1 type, 16 tag) on top.
   */
  bytesSent: number;
  bytesReceived: number;
  cache: CacheCounters;
}

interface Connection {
  client: ImpProtocolClient;
  node: NodeAddress;
  limits: { maxObserveEntries: number; maxLookupKeys: number; maxInFlight: number; maxSubscriptions: number };
}

/** Emitted events: `connected` (node id, address), `disconnected`, `acknowledged` (AcknowledgedBatch), `dropped` (DroppedBatch). */
export class ImpClient extends EventEmitter {
  readonly #options: Required<Omit<ImpClientOptions, 'logger' | 'nodes'>> & { nodes: NodeAddress[] };
  readonly #log: Logger;
  readonly #aggregator: Aggregator;
  readonly #spool: Spool;
  readonly #cache: LookupCache;
  readonly #nodes: NodeAddress[];
  #state: ImpClientState = 'new';
  #connection: Connection | undefined;
  #nodeIndex = 0;
  readonly #inFlight = new Set<number>();
  /** Keys subscribed on the open connection, as cache ids. */
  readonly #subscribed = new Set<string>();
  #tickTimer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #retryTimer: NodeJS.Timeout | undefined;
  readonly #stats = {
    sessions: 0,
    batchesSpooled: 0,
    batchesAcknowledged: 0,
    batchesDuplicate: 0,
    batchesDropped: 0,
    observationsSpooled: 0,
    observationsApplied: 0,
    observationsRejected: 0,
    observationsDropped: 0,
    connects: 0,
    connectFailures: 0,
    bytesSent: 0,
    bytesReceived: 0,
  };

  /**
   * Checks the options and opens the spool; nothing connects before `start()`.
   *
   * @throws CdrError `ERR_IMPCLIENT_NO_NODE` without nodes, `ERR_CONFIG_INVALID` for a malformed node
   *   address, `ERR_IMPCLIENT_STATE` when the spool folder is unusable.
   */
  constructor(options: ImpClientOptions) {
    super();
    if (options.nodes.length === 0) {
      throw new CdrError('ERR_IMPCLIENT_NO_NODE', 'the IMP client needs at least one repository node, HOST:PORT, and got none');
    }
    const nodes = options.nodes.map((node) => (typeof node === 'string' ? parseNodeAddress(node) : node));
    this.#options = {
      intervalMs: 60_000,
      spool: { maxBatches: 10_000, maxBytes: 256 * 1024 * 1024 },
      maxBatchObservations: 10_000,
      maxInFlightBatches: 8,
      backoff: { initialMs: 250, maxMs: 30_000 },
      connectTimeoutMs: 5000,
      requestTimeoutMs: 10_000,
      cacheMaxEntries: 100_000,
      heartbeatIntervalMs: 30_000,
      ...options,
      nodes,
    };
    this.#nodes = [...nodes];
    this.#log = (options.logger ?? pino({ level: 'silent' })).child({ impId: options.hello.impId });
    this.#aggregator = new Aggregator(this.#options.intervalMs);
    this.#cache = new LookupCache(this.#options.cacheMaxEntries);
    this.#spool = new Spool(options.stateDir, this.#options.spool);

    for (const corrupt of this.#spool.corrupt) {
      this.#log.error({ file: corrupt.file, reason: corrupt.reason }, 'spool file does not decode; moved aside and not sent');
    }
  }

  get state(): ImpClientState {
    return this.#state;
  }

  /** Spool files that did not decode when the client was created; they were renamed with `.bad`. */
  get corruptBatches(): readonly CorruptBatch[] {
    return this.#spool.corrupt;
  }

  /** Starts the interval timer and the connection loop. Resolves at once; connecting goes on in the background. */
  start(): void {
    if (this.#state !== 'new') {
      throw new CdrError('ERR_STATE_TRANSITION', `start() needs state new, the client is ${this.#state}`);
    }
    this.#state = 'running';
    this.#log.info({ nodes: this.#nodes.map(formatNodeAddress), spooled: this.#spool.batchCount, lastSequence: this.#spool.lastSequence }, 'IMP client started');

    const tickMs = Math.min(this.#options.intervalMs, 1000);
    this.#tickTimer = setInterval(() => this.#closeIntervals(Date.now()), tickMs);
    this.#tickTimer.unref();
    this.#loop = this.#connectionLoop();
  }

  /**
   * Adds one SMTP session to the current interval.
   *
   * @throws CdrError `ERR_IMPCLIENT_INVALID_REPORT` for a report that does not describe a session,
   *   `ERR_IMPCLIENT_STOPPED` after `stop()`.
   */
  report(session: SessionReport, timeMs = Date.now()): void {
    this.#checkRunning();
    const deltas = sessionToDeltas(session);
    for (const delta of deltas) {
      this.#aggregator.add(delta.kind, delta.key, delta.counters, timeMs);
    }
    this.#stats.sessions += 1;
  }

  /** Adds counter deltas of one object to the current interval, for callers that count by themselves. */
  observe(kind: ObjectKindName, key: string, counters: Partial<CounterValues>, timeMs = Date.now()): void {
    this.#checkRunning();
    this.#aggregator.add(kind, key, counters, timeMs);
  }

  /** Closes every open interval, including the current one, into spooled batches and starts sending them. */
  flush(): void {
    this.#spoolObservations(this.#aggregator.take());
    this.#pump();
  }

  /** Resolves true once a node accepted the handshake, or false after `timeoutMs`. */
  async waitConnected(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#connection && Date.now() < deadline && this.#state === 'running') {
      await new Promise((resolveWait) => setTimeout(resolveWait, 10));
    }
    return this.#connection !== undefined;
  }

  /**
   * Resolves once every spooled batch is acknowledged.
   *
   * @throws CdrError `ERR_IMPCLIENT_TIMEOUT` when batches are still waiting after `timeoutMs`.
   */
  async drain(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (this.#spool.batchCount > 0) {
      if (Date.now() >= deadline) {
        throw new CdrError('ERR_IMPCLIENT_TIMEOUT', `${this.#spool.batchCount} batches still wait in the spool after ${timeoutMs} ms; they are sent once a node is reachable`, {
          details: { batches: this.#spool.batchCount },
        });
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, 20));
    }
  }

  /**
   * Returns the reputation of each key, in order, from the cache where a fresh answer is there and from
   * the repository otherwise. Keys fetched from the repository are subscribed, so a change is pushed.
   *
   * @throws CdrError `ERR_IMPCLIENT_UNAVAILABLE` when a key is not cached and no node is connected,
   *   `ERR_IMPCLIENT_TIMEOUT` when the answer takes longer than `timeoutMs`.
   */
  async lookup(keys: LookupKey[], timeoutMs = this.#options.requestTimeoutMs): Promise<LookupAnswer[]> {
    this.#checkRunning();
    const now = Date.now();
    const answers: (LookupAnswer | undefined)[] = keys.map((key) => {
      const reputation = this.#cache.get(cacheId(key.kind, normaliseKey(key)), now);
      return reputation ? { kind: key.kind, key: key.key, reputation, cached: true } : undefined;
    });
    const missing = keys.map((key, index) => ({ key, index })).filter(({ index }) => answers[index] === undefined);
    this.#cache.counters.hits += keys.length - missing.length;
    this.#cache.counters.misses += missing.length;

    if (missing.length === 0) {
      this.#cache.counters.roundTripsSaved += 1;
      return answers as LookupAnswer[];
    }

    const connection = this.#connection;
    if (!connection) {
      throw new CdrError('ERR_IMPCLIENT_UNAVAILABLE', `no repository node is connected (tried ${this.#nodes.map(formatNodeAddress).join(', ')}); use the local policy and retry later`, {
        details: { keys: missing.length },
      });
    }

    const toSubscribe: impcdr.v1.IObjectKey[] = [];
    for (let offset = 0; offset < missing.length; offset += connection.limits.maxLookupKeys) {
      const chunk = missing.slice(offset, offset + connection.limits.maxLookupKeys);
      this.#cache.counters.roundTrips += 1;
      let response: impcdr.v1.ServerMessage;
      try {
        response = await this.#request(connection, { lookup: { keys: chunk.map(({ key }) => ({ kind: kindToWire(key.kind), key: key.key })) } }, timeoutMs);
      } catch (error) {
        if ((error as CdrError).code === 'ERR_IMPCLIENT_TIMEOUT') {
          throw error;
        }
        throw new CdrError('ERR_IMPCLIENT_UNAVAILABLE', `lookup failed on ${formatNodeAddress(connection.node)}: ${(error as Error).message}; use the local policy and retry later`, {
          cause: error,
        });
      }
      const results = response.lookupResponse?.results ?? [];
      if (response.error || results.length !== chunk.length) {
        throw new CdrError('ERR_IMPCLIENT_UNAVAILABLE', `lookup failed on ${formatNodeAddress(connection.node)}: ${response.error?.message ?? `expected ${chunk.length} results, got ${results.length}`}`);
      }

      const answeredAt = Date.now();
      chunk.forEach(({ key, index }, position) => {
        const result = results[position]!;
        if (result.reputation) {
          const returnedKind = kindFromWire(result.reputation.object?.kind) ?? key.kind;
          const id = cacheId(returnedKind, result.reputation.object?.key ?? key.key);
          this.#cache.set(cacheId(key.kind, normaliseKey(key)), id, result.reputation, answeredAt);
          if (!this.#subscribed.has(id) && this.#subscribed.size + toSubscribe.length < connection.limits.maxSubscriptions) {
            toSubscribe.push({ kind: kindToWire(returnedKind), key: result.reputation.object?.key ?? key.key });
          }
          answers[index] = { kind: key.kind, key: key.key, reputation: result.reputation, cached: false };
        } else {
          answers[index] = { kind: key.kind, key: key.key, error: { code: result.error?.code ?? 0, message: result.error?.message ?? 'no result' }, cached: false };
        }
      });
    }

    if (toSubscribe.length > 0) {
      this.#subscribe(connection, toSubscribe);
    }
    return answers as LookupAnswer[];
  }

  stats(): ImpClientStats {
    const socket = this.#connection?.client.socket;
    return {
      state: this.#state,
      node: this.#connection ? formatNodeAddress(this.#connection.node) : undefined,
      nodes: this.#nodes.map(formatNodeAddress),
      ...this.#stats,
      bytesSent: this.#stats.bytesSent + (socket?.bytesWritten ?? 0),
      bytesReceived: this.#stats.bytesReceived + (socket?.bytesRead ?? 0),
      spoolBatches: this.#spool.batchCount,
      spoolBytes: this.#spool.byteCount,
      cache: { ...this.#cache.counters },
    };
  }

  /**
   * Closes the open intervals into the spool, waits up to `drainTimeoutMs` for their acknowledgement,
   * then closes the connection. Batches still unacknowledged stay in the spool for the next start.
   */
  async stop(drainTimeoutMs = 5000): Promise<void> {
    if (this.#state !== 'running') {
      return;
    }
    this.flush();
    if (this.#connection) {
      try {
        await this.drain(drainTimeoutMs);
      } catch (error) {
        this.#log.warn({ err: error, spooled: this.#spool.batchCount }, 'stopping with batches in the spool');
      }
    }

    this.#state = 'stopping';
    clearInterval(this.#tickTimer);
    clearTimeout(this.#retryTimer);
    this.#wake?.();
    await this.#connection?.client.close();
    await this.#loop;
    this.#state = 'stopped';
    this.#log.info({ spooled: this.#spool.batchCount }, 'IMP client stopped');
  }

  #checkRunning(): void {
    if (this.#state !== 'running') {
      throw new CdrError('ERR_IMPCLIENT_STOPPED', `the IMP client is ${this.#state}; call start() before reporting or looking up`);
    }
  }

  #closeIntervals(nowMs: number): void {
    const observations = this.#aggregator.take(this.#aggregator.intervalStart(nowMs));
    if (observations.length > 0) {
      this.#spoolObservations(observations);
      this.#pump();
    }
  }

  #spoolObservations(observations: impcdr.v1.IObservation[]): void {
    const maxEntries = Math.min(this.#options.maxBatchObservations, this.#connection?.limits.maxObserveEntries ?? Number.POSITIVE_INFINITY);
    for (let offset = 0; offset < observations.length; offset += maxEntries) {
      const chunk = observations.slice(offset, offset + maxEntries);
      const result = this.#spool.add(chunk);
      if ('dropped' in result) {
        this.#recordDrop(result.dropped);
        continue;
      }
      this.#stats.batchesSpooled += 1;
      this.#stats.observationsSpooled += chunk.length;
    }
  }

  #recordDrop(dropped: DroppedBatch): void {
    this.#stats.batchesDropped += 1;
    this.#stats.observationsDropped += dropped.observations;
    this.#log.error({ code: 'ERR_IMPCLIENT_SPOOL_FULL', sequence: dropped.sequence, observations: dropped.observations, bytes: dropped.bytes }, `batch dropped: ${dropped.reason}`);
    this.emit('dropped', dropped);
  }

  /**
   * Connects to one node after the other until stopped; a round in which every node failed waits a
   * backoff delay.
   *
   * NOTE: each node keeps its own window of applied sequences. A batch that one node applied but did
   * not acknowledge before it died is counted again by the next node.
   */
  async #connectionLoop(): Promise<void> {
    let failedAttempts = 0;
    while (this.#state === 'running') {
      const node = this.#nodes[this.#nodeIndex % this.#nodes.length]!;
      const established = await this.#runConnection(node);
      if (this.#state !== 'running') {
        break;
      }

      failedAttempts = established ? 0 : failedAttempts + 1;
      this.#nodeIndex = (this.#nodeIndex + 1) % this.#nodes.length;
      if (failedAttempts > 0 && failedAttempts % this.#nodes.length === 0) {
        const delayMs = backoffDelay(failedAttempts / this.#nodes.length, this.#options.backoff);
        this.#log.warn({ delayMs, nodes: this.#nodes.map(formatNodeAddress) }, 'no repository node reachable; retrying after a delay');
        await new Promise<void>((resolveWait) => {
          this.#wake = resolveWait;
          this.#retryTimer = setTimeout(resolveWait, delayMs);
        });
        this.#wake = undefined;
      }
    }
  }

  /** Connects to `node`, runs the connection until it closes, and returns whether the handshake succeeded. */
  async #runConnection(node: NodeAddress): Promise<boolean> {
    const address = formatNodeAddress(node);
    let client: ImpProtocolClient;
    let accepted: impcdr.v1.IHelloAccepted;
    try {
      client = await withTimeout(
        ImpProtocolClient.connect({ host: node.host, port: node.port, ...this.#options.tls }),
        this.#options.connectTimeoutMs,
        `TLS connection to ${address}`,
        (late) => late.socket.destroy(),
      );
      const answer = await withTimeout(
        client.hello({ ...this.#options.hello, moduleVersion: this.#options.hello.moduleVersion ?? MODULE_VERSION }),
        this.#options.connectTimeoutMs,
        `Hello to ${address}`,
      ).catch((error: unknown) => {
        client.socket.destroy();
        throw error;
      });
      if (!answer.helloAccepted) {
        client.socket.destroy();
        throw new CdrError('ERR_IMPCLIENT_HELLO_REJECTED', `${address} rejected Hello: ${answer.helloRejected?.message ?? 'no reason given'}`, {
          details: { node: address, code: answer.helloRejected?.code },
        });
      }
      accepted = answer.helloAccepted;
    } catch (error) {
      this.#stats.connectFailures += 1;
      this.#log.warn({ node: address, err: error }, 'connection to repository node failed');
      return false;
    }

    const limits = accepted.limits ?? {};
    const connection: Connection = {
      client,
      node,
      limits: {
        maxObserveEntries: limits.maxObserveEntries || 10_000,
        maxLookupKeys: limits.maxLookupKeys || 1000,
        maxInFlight: limits.maxInFlight || 64,
        maxSubscriptions: limits.maxSubscriptions ?? 0,
      },
    };
    this.#addPeers(accepted.peers ?? []);
    this.#spool.raiseSequence(Number(accepted.lastSequence ?? 0));
    this.#stats.connects += 1;
    this.#connection = connection;
    this.#subscribed.clear();
    client.onPush = (message) => this.#handlePush(message);
    this.#log.info({ node: address, nodeId: accepted.nodeId, lastSequence: Number(accepted.lastSequence ?? 0), spooled: this.#spool.batchCount }, 'connected to repository node');
    this.emit('connected', { node: address, nodeId: accepted.nodeId });

    this.#resubscribe(connection);
    this.#pump();
    const heartbeat = setInterval(() => this.#sendHeartbeat(connection), this.#options.heartbeatIntervalMs);
    heartbeat.unref();
    await client.closed();
    clearInterval(heartbeat);

    this.#stats.bytesSent += client.socket.bytesWritten;
    this.#stats.bytesReceived += client.socket.bytesRead;
    this.#connection = undefined;
    this.#inFlight.clear();
    this.#subscribed.clear();
    if (this.#state === 'running') {
      this.#log.warn({ node: address, spooled: this.#spool.batchCount }, 'connection to repository node closed; failing over');
    }
    this.emit('disconnected', { node: address });
    return true;
  }

  /** Sends a Heartbeat; no answer within the request timeout closes the connection, which fails over. */
  #sendHeartbeat(connection: Connection): void {
    this.#request(connection, { heartbeat: { clientTimeMs: Date.now() } }, this.#options.requestTimeoutMs).catch((error: unknown) => {
      if (this.#connection === connection) {
        this.#log.warn({ node: formatNodeAddress(connection.node), err: error }, 'Heartbeat not answered; closing the connection');
        connection.client.socket.destroy();
      }
    });
  }

  #addPeers(peers: impcdr.v1.IPeerNode[]): void {
    for (const peer of peers) {
      if (!peer.host || !peer.port) {
        continue;
      }
      const known = this.#nodes.some((node) => node.host === peer.host && node.port === peer.port);
      if (!known) {
        this.#nodes.push({ host: peer.host, port: peer.port });
        this.#log.info({ node: formatNodeAddress({ host: peer.host, port: peer.port }), nodeId: peer.nodeId }, 'peer node added for failover');
      }
    }
  }

  /** Sends spooled batches, oldest first, while the connection has room for more in flight. */
  #pump(): void {
    const connection = this.#connection;
    if (!connection || this.#state === 'stopped') {
      return;
    }
    const window = Math.min(this.#options.maxInFlightBatches, connection.limits.maxInFlight);
    for (const batch of this.#spool.pending()) {
      if (this.#inFlight.size >= window) {
        break;
      }
      if (this.#inFlight.has(batch.sequence)) {
        continue;
      }
      this.#inFlight.add(batch.sequence);
      void this.#sendBatch(connection, batch.sequence, batch.observations);
    }
  }

  async #sendBatch(connection: Connection, sequence: number, observations: number): Promise<void> {
    const address = formatNodeAddress(connection.node);
    let response: impcdr.v1.ServerMessage;
    try {
      const request = this.#spool.read(sequence);
      response = await this.#request(connection, { observe: request }, this.#options.requestTimeoutMs);
    } catch (error) {
      if (this.#connection === connection) {
        // A late acknowledgement or an unreadable batch: closing the connection resends from the spool.
        this.#log.warn({ node: address, sequence, err: error }, 'batch not acknowledged; reconnecting');
        connection.client.socket.destroy();
      }
      return;
    }

    const ack = response.observeAck;
    if (!ack) {
      // TOO_MANY_IN_FLIGHT or SHUTTING_DOWN: the batch was not applied and is sent again later.
      this.#log.warn({ node: address, sequence, code: response.error?.code, message: response.error?.message }, 'batch rejected as a whole; it stays in the spool and is sent again');
      setTimeout(() => {
        this.#inFlight.delete(sequence);
        this.#pump();
      }, 200).unref();
      return;
    }

    const rejected = ack.rejected?.length ?? 0;
    this.#spool.remove(sequence);
    this.#inFlight.delete(sequence);
    this.#stats.batchesAcknowledged += 1;
    this.#stats.observationsApplied += ack.applied ?? 0;
    this.#stats.observationsRejected += rejected;
    if (ack.duplicate) {
      this.#stats.batchesDuplicate += 1;
    }
    if (rejected > 0) {
      this.#log.warn({ node: address, sequence, rejected: ack.rejected?.slice(0, 5) }, `${rejected} observations of the batch were rejected and not counted`);
    }
    const event: AcknowledgedBatch = { sequence, node: address, observations, applied: ack.applied ?? 0, rejected, duplicate: ack.duplicate ?? false };
    this.emit('acknowledged', event);
    this.#pump();
  }

  #request(connection: Connection, body: Omit<impcdr.v1.IClientMessage, 'requestId'>, timeoutMs: number): Promise<impcdr.v1.ServerMessage> {
    return withTimeout(connection.client.request(body), timeoutMs, `request to ${formatNodeAddress(connection.node)}`);
  }

  #subscribe(connection: Connection, keys: impcdr.v1.IObjectKey[]): void {
    for (const key of keys) {
      this.#subscribed.add(cacheId(kindFromWire(key.kind) ?? 'ip', key.key ?? ''));
    }
    this.#request(connection, { subscribe: { keys } }, this.#options.requestTimeoutMs)
      .then((response) => {
        const rejected = response.subscribeAck?.rejected ?? [];
        for (const entry of rejected) {
          const key = keys[entry.index ?? 0];
          this.#subscribed.delete(cacheId(kindFromWire(key?.kind) ?? 'ip', key?.key ?? ''));
        }
      })
      .catch((error: unknown) => this.#log.debug({ err: error }, 'subscribe failed; cached reputations expire by TTL only'));
  }

  /** Subscribes the cached keys again on a new connection, because subscriptions belong to a connection. */
  #resubscribe(connection: Connection): void {
    const keys: impcdr.v1.IObjectKey[] = [];
    for (const id of this.#cache.ids().slice(0, connection.limits.maxSubscriptions)) {
      const [kind, key] = id.split('\u0000') as [ObjectKindName, string];
      keys.push({ kind: kindToWire(kind), key });
    }
    for (let offset = 0; offset < keys.length; offset += connection.limits.maxLookupKeys) {
      this.#subscribe(connection, keys.slice(offset, offset + connection.limits.maxLookupKeys));
    }
  }

  #handlePush(message: impcdr.v1.ServerMessage): void {
    const reputation = message.reputationChanged?.reputation;
    if (reputation) {
      const kind = kindFromWire(reputation.object?.kind);
      if (kind && reputation.object?.key) {
        this.#cache.applyPush(cacheId(kind, reputation.object.key), reputation, Date.now());
      }
      return;
    }
    if (message.error) {
      this.#log.warn({ code: message.error.code, message: message.error.message, fatal: message.error.fatal }, 'error from repository node');
    }
  }
}

/** Lower-cases domain and user keys and normalises IP addresses, so differently written keys share a cache entry. */
function normaliseKey(key: LookupKey): string {
  if (key.kind === 'ip') {
    return normaliseIp(key.key) ?? key.key;
  }
  return key.key.trim().toLowerCase().replace(/\.$/, '');
}

/** Rejects with `ERR_IMPCLIENT_TIMEOUT` when `promise` does not settle within `timeoutMs`; `onLate` receives a value that arrives afterwards. */
function withTimeout<T>(promise: Promise<T>, timeoutMs: number, what: string, onLate?: (value: T) => void): Promise<T> {
  return new Promise<T>((resolvePromise, rejectPromise) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      rejectPromise(new CdrError('ERR_IMPCLIENT_TIMEOUT', `${what} timed out after ${timeoutMs} ms without a response`, { details: { timeoutMs } }));
    }, timeoutMs);
    promise.then(
      (value) => {
        clearTimeout(timer);
        if (timedOut) {
          onLate?.(value);
        } else {
          resolvePromise(value);
        }
      },
      (error: unknown) => {
        clearTimeout(timer);
        rejectPromise(error);
      },
    );
  });
}
