/**
 * A Unix-socket server for the local request and response protocols: the repository's control socket
 * and the pairing daemon's local socket. Both sides send varint-length-delimited frames
 * (modules/protocol/framing.ts). For each request frame, which carries a request id, the server sends
 * one response frame with the same id: the handler's result or an error. The socket file's mode (0660) is
 * the access control.
 *
 * A frame over the size limit, or one that does not decode as a request, closes the connection after a
 * warning. A handler error that is not a `CdrError` is logged and sent with the protocol's fallback code.
 */

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

import { encodeFrame, FrameDecoder } from '../../modules/protocol/framing.js';
import { CdrError } from './errors.js';
import type { Logger } from './logger.js';

/** The fields that the server reads from every request. */
export interface FramedRequest {
  requestId: number;
  /** Name of the request's oneof body, for the log line of a failed request. */
  body?: string;
}

/** The fields that the server sets in every response. */
export interface FramedResponse {
  requestId?: number | null;
  error?: { code?: string | null; message?: string | null } | null;
}

/** One local protocol: its messages, its limits and the words its log lines use. */
export interface FramedSocketProtocol<Request extends FramedRequest, Response extends FramedResponse> {
  /** Maximum size of one request frame, in bytes. */
  maxFrameBytes: number;
  /** Decodes a request frame; throws when the bytes are not a request. */
  decode(frame: Buffer): Request;
  encode(response: Response): Uint8Array;
  /** Handles one request; the result is sent with the request's id. */
  handle(request: Request): Promise<Partial<Response>>;
  /** Error code sent when `handle` throws something other than a `CdrError`. */
  fallbackErrorCode: string;
  /** Words of the log lines, such as "control socket", "control connection", "control request" and "ControlRequest". */
  labels: { socket: string; connection: string; request: string; requestType: string };
}

export class FramedSocketServer<Request extends FramedRequest, Response extends FramedResponse> {
  readonly #server: Server;
  readonly #protocol: FramedSocketProtocol<Request, Response>;
  readonly #log: Logger;
  readonly #sockets = new Set<Socket>();
  #path = '';

  constructor(protocol: FramedSocketProtocol<Request, Response>, log: Logger) {
    this.#protocol = protocol;
    this.#log = log;
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (error) => this.#log.error({ err: error }, `${protocol.labels.socket} error`));
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /**
   * Listens on `path`, with mode 0660. A socket file left by a process that died is removed first, so the
   * caller makes sure that no live process owns it.
   */
  listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    if (existsSync(path)) {
      unlinkSync(path);
    }
    this.#path = path;
    return new Promise((resolveListen, rejectListen) => {
      this.#server.once('error', rejectListen);
      this.#server.listen(path, () => {
        this.#server.off('error', rejectListen);
        chmodSync(path, 0o660);
        resolveListen();
      });
    });
  }

  /** Stops accepting, ends open connections, and removes the socket file once the server has closed. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolveClosed) => this.#server.close(() => resolveClosed()));
    for (const socket of this.#sockets) {
      socket.end();
    }
    await closed;
    if (this.#path && existsSync(this.#path)) {
      unlinkSync(this.#path);
    }
  }

  #accept(socket: Socket): void {
    const { labels } = this.#protocol;
    this.#sockets.add(socket);
    const decoder = new FrameDecoder(this.#protocol.maxFrameBytes);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', (error) => this.#log.warn({ err: error }, `${labels.connection} error`));
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        this.#log.warn({ code: (error as CdrError).code }, `closing ${labels.connection}: bad frame`);
        socket.destroy();
        return;
      }

      for (const frame of frames) {
        let request: Request;
        try {
          request = this.#protocol.decode(frame);
        } catch {
          this.#log.warn(`closing ${labels.connection}: frame is not a ${labels.requestType}`);
          socket.destroy();
          return;
        }
        this.#protocol.handle(request).then(
          (body) => this.#send(socket, { requestId: request.requestId, ...body } as Response),
          (error: unknown) => {
            const code = error instanceof CdrError ? error.code : this.#protocol.fallbackErrorCode;
            if (!(error instanceof CdrError)) {
              this.#log.error({ err: error, body: request.body }, `${labels.request} failed`);
            }
            this.#send(socket, { requestId: request.requestId, error: { code, message: (error as Error).message } } as Response);
          },
        );
      }
    });
  }

  #send(socket: Socket, response: Response): void {
    if (!socket.destroyed) {
      socket.write(encodeFrame(this.#protocol.encode(response)));
    }
  }
}
