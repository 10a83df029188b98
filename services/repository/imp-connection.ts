/**
 * One IMP connection: framing, the handshake, request dispatch with a bound on requests in flight, and
 * pushes for subscribed keys.
 */

import type { TLSSocket } from 'node:tls';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { CdrConfig } from '../common/config.js';
import { errorCodeToWire, proto, PUSH_REQUEST_ID, type ClientMessageType } from '../../modules/protocol/constants.js';
import { countersToVector } from '../../modules/protocol/counters.js';
import { encodeFrame, FrameDecoder } from '../../modules/protocol/framing.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { checkHello } from './handshake.js';
import { normaliseKey } from './keys.js';
import type { ReputationIndex } from './reputation-index.js';
import { objectId, type PreparedObservation } from './store.js';
import type { SubscriptionRegistry } from './subscriptions.js';
import { entryError, kindOfWireKey, reputationToWire } from './wire.js';

/** Largest counter delta one observation may carry, so totals stay exact in a double. */
export const MAX_COUNTER_DELTA = 2 ** 32;

/** Traffic counters of the listener, summed over every connection. */
export interface TrafficCounters {
  observeBatches: number;
  observations: number;
  duplicateBatches: number;
  lookups: number;
  lookupKeys: number;
  errors: number;
}

/** Services and settings a connection uses from the server that owns it. */
export interface ConnectionContext {
  config: Readonly<CdrConfig>;
  index: ReputationIndex;
  subscriptions: SubscriptionRegistry;
  nodeId: string;
  /** The other node(s) of the pair, for the failover list in HelloAccepted. */
  peers: () => { nodeId: string; host: string; port: number }[];
  traffic: TrafficCounters;
  isShuttingDown: () => boolean;
}

type ConnectionState = 'handshake' | 'ready' | 'closing' | 'closed';

/** Identity of the IMP on a connection, once its Hello was accepted. */
export interface ClientIdentity {
  impId: string;
  clusterId: string;
  model: string;
  oosVersion: string;
  moduleVersion: string;
}

export class ImpConnection {
  readonly id: string;
  readonly address: string;
  readonly connectedSinceMs = Date.now();
  identity: ClientIdentity | undefined;
  observations = 0;
  lookups = 0;

  readonly #socket: TLSSocket;
  readonly #context: ConnectionContext;
  readonly #log: Logger;
  readonly #decoder: FrameDecoder;
  readonly #certificateName: string;
  #state: ConnectionState = 'handshake';
  #inFlight = 0;
  #handshakeTimer: NodeJS.Timeout | undefined;
  #idleDrained: (() => void) | undefined;

  /** Called once when the socket has closed. */
  onClose: () => void = () => {};

  constructor(id: string, socket: TLSSocket, context: ConnectionContext, log: Logger) {
    this.id = id;
    this.#socket = socket;
    this.#context = context;
    this.address = `${socket.remoteAddress ?? '?'}:${socket.remotePort ?? 0}`;
    this.#log = log.child({ connection: id, remote: this.address });
    this.#decoder = new FrameDecoder(context.config.limits.maxFrameBytes);
    this.#certificateName = String(socket.getPeerCertificate()?.subject?.CN ?? '');

    this.#handshakeTimer = setTimeout(
      () => this.#fail('ERR_PROTO_HANDSHAKE_TIMEOUT', `no Hello within ${context.config.imp.handshakeTimeoutMs} ms`),
      context.config.imp.handshakeTimeoutMs,
    );
    socket.setTimeout(context.config.imp.idleTimeoutMs);
    socket.on('timeout', () => {
      this.#log.info({ idleTimeoutMs: context.config.imp.idleTimeoutMs }, 'closing idle connection');
      this.#socket.destroy();
    });
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('drain', () => socket.resume());
    socket.on('error', (error) => this.#log.warn({ err: error }, 'connection error'));
    socket.on('close', () => this.#closed());

    this.#log.info({ certificate: this.#certificateName }, 'connection opened');
  }

  get state(): ConnectionState {
    return this.#state;
  }

  get inFlight(): number {
    return this.#inFlight;
  }

  /** Sends a push for a subscribed key. */
  push(reputation: impcdr.v1.IReputation): void {
    if (this.#state === 'ready') {
      this.#send({ requestId: PUSH_REQUEST_ID, reputationChanged: { reputation } });
    }
  }

  /**
   * Stops taking requests, waits up to `timeoutMs` for those in flight, sends the client a
   * SHUTTING_DOWN error and closes.
   */
  async shutdown(timeoutMs: number): Promise<void> {
    if (this.#state === 'closed') {
      return;
    }
    const wasReady = this.#state === 'ready';
    this.#state = 'closing';

    if (this.#inFlight > 0) {
      await new Promise<void>((resolveDrained) => {
        const timer = setTimeout(resolveDrained, timeoutMs);
        this.#idleDrained = () => {
          clearTimeout(timer);
          resolveDrained();
        };
      });
    }

    if (wasReady) {
      this.#send({ requestId: PUSH_REQUEST_ID, error: errorBody('ERR_PROTO_SHUTTING_DOWN', 'the repository is shutting down; reconnect to the other node or retry', true) });
    }
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #receive(chunk: Buffer): void {
    if (this.#state === 'closed') {
      return;
    }

    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (error) {
      const cdrError = error as CdrError;
      this.#fail(cdrError.code, cdrError.message);
      return;
    }

    for (const frame of frames) {
      if (this.#socket.destroyed) {
        return;
      }
      let message: impcdr.v1.ClientMessage;
      try {
        message = proto.ClientMessage.decode(frame);
      } catch (error) {
        this.#fail('ERR_PROTO_MALFORMED_FRAME', `frame is not a ClientMessage: ${(error as Error).message}`);
        return;
      }
      this.#dispatch(message);
    }
  }

  #dispatch(message: impcdr.v1.ClientMessage): void {
    const requestId = Number(message.requestId);
    const type = message.body as ClientMessageType | undefined;

    if (this.#state === 'handshake') {
      if (type !== 'hello') {
        this.#fail('ERR_PROTO_HANDSHAKE_REQUIRED', `the first message must be Hello, got ${type ?? 'an unknown message type'}`);
        return;
      }
      this.#handleHello(requestId, message.hello!);
      return;
    }
    if (this.#state !== 'ready') {
      this.#reply(requestId, { error: errorBody('ERR_PROTO_SHUTTING_DOWN', 'the repository is shutting down', false) });
      return;
    }

    if (type === undefined) {
      this.#rejectRequest(requestId, 'ERR_PROTO_UNKNOWN_MESSAGE_TYPE', 'message has no body this server knows; update the repository or the client');
      return;
    }
    if (type === 'hello') {
      this.#rejectRequest(requestId, 'ERR_PROTO_DUPLICATE_HELLO', 'Hello was already accepted on this connection');
      return;
    }
    if (requestId <= 0) {
      this.#rejectRequest(requestId, 'ERR_PROTO_INVALID_REQUEST_ID', 'request_id must be greater than zero');
      return;
    }
    if (this.#inFlight >= this.#context.config.limits.maxInFlight) {
      this.#rejectRequest(
        requestId,
        'ERR_PROTO_TOO_MANY_IN_FLIGHT',
        `${this.#inFlight} requests in flight, the maximum is ${this.#context.config.limits.maxInFlight}; wait for answers before sending more`,
      );
      return;
    }

    this.#inFlight += 1;
    this.#handleRequest(requestId, type, message)
      .then((body) => this.#reply(requestId, body))
      .catch((error: unknown) => {
        if (error instanceof CdrError) {
          this.#rejectRequest(requestId, error.code, error.message);
          return;
        }
        this.#log.error({ err: error, requestId, type }, 'request failed');
        this.#rejectRequest(requestId, 'ERR_PROTO_INTERNAL', 'internal error; the request was not applied');
      })
      .finally(() => {
        this.#inFlight -= 1;
        if (this.#inFlight === 0) {
          this.#idleDrained?.();
        }
      });
  }

  async #handleRequest(requestId: number, type: Exclude<ClientMessageType, 'hello'>, message: impcdr.v1.ClientMessage): Promise<Partial<impcdr.v1.IServerMessage>> {
    switch (type) {
      case 'observe':
        return { observeAck: await this.#handleObserve(message.observe!) };
      case 'lookup':
        return { lookupResponse: await this.#handleLookup(message.lookup!) };
      case 'subscribe':
        return { subscribeAck: await this.#handleSubscribe(message.subscribe!) };
      case 'heartbeat':
        return { heartbeatAck: { clientTimeMs: message.heartbeat?.clientTimeMs ?? 0, serverTimeMs: Date.now() } };
      default:
        throw new CdrError('ERR_PROTO_UNKNOWN_MESSAGE_TYPE', `request ${requestId} has unknown type ${String(type)}`);
    }
  }

  #handleHello(requestId: number, hello: impcdr.v1.IHello): void {
    clearTimeout(this.#handshakeTimer);
    const fields = {
      impId: hello.impId ?? '',
      clusterId: hello.clusterId ?? '',
      model: hello.model ?? '',
      oosVersion: hello.oosVersion ?? '',
      moduleVersion: hello.moduleVersion ?? '',
      protocolVersion: hello.protocolVersion ?? 0,
    };

    let protocolVersion: number;
    try {
      protocolVersion = checkHello(fields, this.#certificateName, this.#context.config.imp.minOosVersion);
    } catch (error) {
      const cdrError = error as CdrError;
      this.#context.traffic.errors += 1;
      this.#log.warn({ code: cdrError.code, impId: fields.impId, model: fields.model, oosVersion: fields.oosVersion }, cdrError.message);
      this.#send({ requestId, helloRejected: { code: errorCodeToWire(cdrError.code), message: cdrError.message } });
      this.#close();
      return;
    }

    this.#context.index.store
      .lastSequence(fields.impId)
      .then((lastSequence) => {
        this.identity = {
          impId: fields.impId,
          clusterId: fields.clusterId,
          model: fields.model,
          oosVersion: fields.oosVersion,
          moduleVersion: fields.moduleVersion,
        };
        this.#state = 'ready';
        const limits = this.#context.config.limits;
        this.#send({
          requestId,
          helloAccepted: {
            nodeId: this.#context.nodeId,
            protocolVersion,
            limits: {
              maxFrameBytes: limits.maxFrameBytes,
              maxLookupKeys: limits.maxLookupKeys,
              maxObserveEntries: limits.maxObserveEntries,
              maxInFlight: limits.maxInFlight,
              maxSubscriptions: limits.maxSubscriptions,
            },
            peers: this.#context.peers(),
            serverTimeMs: Date.now(),
            policyVersion: this.#context.index.policy.version,
            lastSequence,
          },
        });
        this.#log.info({ impId: fields.impId, clusterId: fields.clusterId, model: fields.model, oosVersion: fields.oosVersion }, 'hello accepted');
      })
      .catch((error: unknown) => {
        this.#log.error({ err: error }, 'reading the last sequence failed');
        this.#fail('ERR_PROTO_INTERNAL', 'internal error during the handshake');
      });
  }

  async #handleObserve(request: impcdr.v1.IObserveRequest): Promise<impcdr.v1.IObserveAck> {
    const entries = request.observations ?? [];
    const sequence = Number(request.sequence ?? 0);
    this.#checkBatchSize(entries.length, this.#context.config.limits.maxObserveEntries, 'observations');
    if (sequence < 1) {
      throw new CdrError('ERR_PROTO_INVALID_OBSERVATION', 'Observe sequence must be at least 1');
    }

    const prepared: PreparedObservation[] = [];
    const rejected: impcdr.v1.IEntryError[] = [];
    const now = Date.now();
    entries.forEach((entry, index) => {
      try {
        prepared.push(this.#prepareObservation(entry, now));
      } catch (error) {
        rejected.push(entryError(index, error));
      }
    });

    const { duplicate } = await this.#context.index.observe(this.identity!.impId, sequence, prepared);
    const traffic = this.#context.traffic;
    traffic.observeBatches += 1;
    if (duplicate) {
      traffic.duplicateBatches += 1;
      this.#log.info({ sequence }, 'duplicate Observe batch acknowledged without counting');
    } else {
      traffic.observations += prepared.length;
      this.observations += prepared.length;
    }
    if (rejected.length > 0) {
      this.#log.warn({ sequence, rejected: rejected.length, first: rejected[0]!.message }, 'Observe entries rejected');
    }
    return { sequence, applied: duplicate ? 0 : prepared.length, rejected, duplicate };
  }

  #prepareObservation(entry: impcdr.v1.IObservation, now: number): PreparedObservation {
    const kind = kindOfWireKey(entry.object);
    const normalised = normaliseKey(kind, entry.object?.key ?? '');

    const { retentionDays, maxFutureSkewSeconds } = this.#context.config.index;
    const intervalStartMs = Number(entry.intervalStartMs ?? 0);
    if (intervalStartMs > now + maxFutureSkewSeconds * 1000) {
      throw new CdrError('ERR_PROTO_INVALID_OBSERVATION', `interval_start_ms ${intervalStartMs} is more than ${maxFutureSkewSeconds} s in the future; check the IMP's clock`);
    }
    if (intervalStartMs < now - retentionDays * 86_400_000) {
      throw new CdrError('ERR_PROTO_INVALID_OBSERVATION', `interval_start_ms ${intervalStartMs} is older than the retention of ${retentionDays} days`);
    }

    const vector = countersToVector(entry.counters);
    if (vector.some((value) => !Number.isSafeInteger(value) || value < 0 || value > MAX_COUNTER_DELTA)) {
      throw new CdrError('ERR_PROTO_INVALID_OBSERVATION', `a counter exceeds the maximum delta of ${MAX_COUNTER_DELTA}`);
    }
    if (vector.every((value) => value === 0)) {
      throw new CdrError('ERR_PROTO_INVALID_OBSERVATION', 'every counter is zero');
    }

    return { kind, key: normalised.key, parents: normalised.parents, intervalStartMs, vector };
  }

  async #handleLookup(request: impcdr.v1.ILookupRequest): Promise<impcdr.v1.ILookupResponse> {
    const keys = request.keys ?? [];
    this.#checkBatchSize(keys.length, this.#context.config.limits.maxLookupKeys, 'keys');

    const results = await Promise.all(
      keys.map(async (object, index): Promise<impcdr.v1.ILookupResult> => {
        try {
          const reputation = await this.#context.index.lookup(kindOfWireKey(object), object.key ?? '');
          return { reputation: reputationToWire(reputation) };
        } catch (error) {
          if (!(error instanceof CdrError)) {
            this.#log.error({ err: error, index }, 'lookup of one key failed');
          }
          return { error: entryError(index, error) };
        }
      }),
    );

    this.#context.traffic.lookups += 1;
    this.#context.traffic.lookupKeys += keys.length;
    this.lookups += keys.length;
    return { results };
  }

  async #handleSubscribe(request: impcdr.v1.ISubscribeRequest): Promise<impcdr.v1.ISubscribeAck> {
    const keys = request.keys ?? [];
    const rejected: impcdr.v1.IEntryError[] = [];
    const limit = this.#context.config.limits.maxSubscriptions;

    for (const [index, object] of keys.entries()) {
      try {
        const kind = kindOfWireKey(object);
        const { key } = normaliseKey(kind, object.key ?? '');
        const id = objectId(kind, key);
        if (request.unsubscribe) {
          this.#context.subscriptions.remove(this, id);
          continue;
        }
        if (!this.#context.subscriptions.has(this, id) && this.#context.subscriptions.countFor(this) >= limit) {
          throw new CdrError('ERR_PROTO_TOO_MANY_SUBSCRIPTIONS', `this connection already has ${limit} subscriptions, the maximum`);
        }
        const current = await this.#context.index.lookupNormalised(kind, key);
        this.#context.subscriptions.add(this, id, current);
      } catch (error) {
        rejected.push(entryError(index, error));
      }
    }
    return { subscribed: this.#context.subscriptions.countFor(this), rejected };
  }

  #checkBatchSize(count: number, maximum: number, noun: string): void {
    if (count === 0) {
      throw new CdrError('ERR_PROTO_EMPTY_BATCH', `the batch has no ${noun}`);
    }
    if (count > maximum) {
      throw new CdrError('ERR_PROTO_BATCH_TOO_LARGE', `the batch has ${count} ${noun}, the maximum is ${maximum}; split it`, {
        details: { count, maximum },
      });
    }
  }

  /** Replies to one request with an Error and keeps the connection open. */
  #rejectRequest(requestId: number, code: CdrError['code'], message: string): void {
    this.#context.traffic.errors += 1;
    this.#log.warn({ requestId, code }, message);
    this.#reply(requestId, { error: errorBody(code, message, false) });
  }

  /** The single fatal path: log, send a fatal Error with the reason code, close. */
  #fail(code: CdrError['code'], message: string): void {
    if (this.#state === 'closed' || this.#state === 'closing') {
      return;
    }
    this.#context.traffic.errors += 1;
    this.#log.warn({ code }, `closing connection: ${message}`);
    this.#send({ requestId: PUSH_REQUEST_ID, error: errorBody(code, message, true) });
    this.#close();
  }

  #close(): void {
    this.#state = 'closing';
    clearTimeout(this.#handshakeTimer);
    this.#socket.end();
    setTimeout(() => this.#socket.destroy(), 1000).unref();
  }

  #reply(requestId: number, body: Partial<impcdr.v1.IServerMessage>): void {
    this.#send({ requestId, ...body });
  }

  #send(message: impcdr.v1.IServerMessage): void {
    if (this.#socket.destroyed || !this.#socket.writable) {
      return;
    }
    const frame = encodeFrame(proto.ServerMessage.encode(message).finish());
    if (!this.#socket.write(frame)) {
      // The client reads responses slower than it sends requests: stop reading until the responses drain.
      this.#socket.pause();
    }
  }

  #closed(): void {
    if (this.#state === 'closed') {
      return;
    }
    this.#state = 'closed';
    clearTimeout(this.#handshakeTimer);
    this.#idleDrained?.();
    this.#log.info({ observations: this.observations, lookups: this.lookups }, 'connection closed');
    this.onClose();
  }
}

function errorBody(code: CdrError['code'], message: string, fatal: boolean): impcdr.v1.IError {
  return { code: errorCodeToWire(code), message, fatal };
}
