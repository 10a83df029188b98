/**
 * A minimal native-protocol client: TLS connection, framing, request ids and response matching. The IMP
 * client module builds failover, spooling and caching on top of it; tests and benchmarks use it as is.
 */

import { connect, type TLSSocket } from 'node:tls';

import { CdrError } from '../../services/common/errors.js';
import { errorCodeFromWire, PROTOCOL_VERSION, proto } from './constants.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import type { impcdr } from './generated/messages.js';

export interface ClientTlsOptions {
  host: string;
  port: number;
  /** CA certificate that signed the server certificate, PEM. */
  ca: string;
  /** Client certificate and key, PEM, from `cdrctl client enroll`. */
  cert: string;
  key: string;
  /** Name checked against the server certificate; defaults to `host`. */
  servername?: string;
  /** Largest frame accepted from the server, in bytes. @defaultValue 16 MiB */
  maxFrameBytes?: number;
}

export interface HelloOptions {
  impId: string;
  clusterId: string;
  model: string;
  oosVersion: string;
  moduleVersion: string;
  protocolVersion?: number;
}

type Body = Omit<impcdr.v1.IClientMessage, 'requestId'>;

export class ImpProtocolClient {
  readonly socket: TLSSocket;
  readonly #pending = new Map<number, { resolve: (message: impcdr.v1.ServerMessage) => void; reject: (error: unknown) => void }>();
  readonly #decoder: FrameDecoder;
  #nextRequestId = 1;
  #closedError: CdrError | undefined;

  /** Messages with request id 0: pushes and fatal errors. */
  onPush: (message: impcdr.v1.ServerMessage) => void = () => {};
  /** Every message received, in order; tests read fatal errors from here. */
  readonly received: impcdr.v1.ServerMessage[] = [];

  private constructor(socket: TLSSocket, maxFrameBytes: number) {
    this.socket = socket;
    this.#decoder = new FrameDecoder(maxFrameBytes);
    socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    socket.on('close', () => this.#failPending(new CdrError('ERR_PROTO_CONNECTION_CLOSED', 'connection closed by the server')));
    socket.on('error', (error) => this.#failPending(new CdrError('ERR_PROTO_CONNECTION_CLOSED', `connection failed: ${error.message}`, { cause: error })));
  }

  /** Opens a TLS 1.3 connection; resolves once the TLS handshake succeeded. */
  static connect(options: ClientTlsOptions): Promise<ImpProtocolClient> {
    return new Promise((resolveConnect, rejectConnect) => {
      const socket = connect({
        host: options.host,
        port: options.port,
        ca: options.ca,
        cert: options.cert,
        key: options.key,
        servername: options.servername ?? (/^[0-9.:]+$/.test(options.host) ? undefined : options.host),
        minVersion: 'TLSv1.3',
      });
      const client = new ImpProtocolClient(socket, options.maxFrameBytes ?? 16 * 1024 * 1024);
      socket.once('secureConnect', () => resolveConnect(client));
      socket.once('error', rejectConnect);
    });
  }

  /** Sends Hello and resolves with the server's answer, accepted or rejected. */
  async hello(options: HelloOptions): Promise<impcdr.v1.ServerMessage> {
    return this.request({ hello: { ...options, protocolVersion: options.protocolVersion ?? PROTOCOL_VERSION } });
  }

  /** Sends one request and resolves with the message that carries its request id. */
  request(body: Body): Promise<impcdr.v1.ServerMessage> {
    const requestId = this.#nextRequestId++;
    return this.requestWithId(requestId, body);
  }

  requestWithId(requestId: number, body: Body): Promise<impcdr.v1.ServerMessage> {
    if (this.#closedError) {
      return Promise.reject(this.#closedError);
    }
    return new Promise((resolveRequest, rejectRequest) => {
      this.#pending.set(requestId, { resolve: resolveRequest, reject: rejectRequest });
      this.socket.write(encodeFrame(proto.ClientMessage.encode({ requestId, ...body }).finish()));
    });
  }

  /** Writes bytes as they are, for tests of malformed input. */
  writeRaw(bytes: Uint8Array): void {
    this.socket.write(bytes);
  }

  /** Resolves when the server has closed the connection. */
  closed(): Promise<void> {
    if (this.socket.destroyed || this.socket.readableEnded) {
      return Promise.resolve();
    }
    return new Promise((resolveClosed) => this.socket.once('close', () => resolveClosed()));
  }

  close(): Promise<void> {
    const closed = this.closed();
    this.socket.end();
    return closed;
  }

  #receive(chunk: Buffer): void {
    let frames: Buffer[];
    try {
      frames = this.#decoder.push(chunk);
    } catch (error) {
      this.#failPending(error as CdrError);
      this.socket.destroy();
      return;
    }

    for (const frame of frames) {
      let message: impcdr.v1.ServerMessage;
      try {
        message = proto.ServerMessage.decode(frame);
      } catch (error) {
        this.#failPending(new CdrError('ERR_PROTO_MALFORMED_FRAME', `frame from the server is not a ServerMessage: ${(error as Error).message}`, { cause: error }));
        this.socket.destroy();
        return;
      }
      this.received.push(message);
      const requestId = Number(message.requestId);
      const pending = this.#pending.get(requestId);
      if (requestId !== 0 && pending) {
        this.#pending.delete(requestId);
        pending.resolve(message);
        continue;
      }
      if (message.error?.fatal) {
        this.#failPending(
          new CdrError(errorCodeFromWire(message.error.code), message.error.message ?? 'fatal error', { details: { fatal: true } }),
        );
      }
      this.onPush(message);
    }
  }

  #failPending(error: CdrError): void {
    this.#closedError ??= error;
    for (const pending of this.#pending.values()) {
      pending.reject(error);
    }
    this.#pending.clear();
  }
}
