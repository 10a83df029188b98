/**
 * The pairing daemon's local Unix socket, through which cdrctl opens windows and starts joins and
 * unpairs. Its file mode (0660) is the access control, as for the repository's control socket.
 */

import { chmodSync, existsSync, mkdirSync, unlinkSync } from 'node:fs';
import { createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { proto } from '../../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../../modules/protocol/framing.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import type { PairingDaemon } from './daemon.js';

/** Largest request accepted on the local socket; requests contain at most a host name and a code. */
const MAX_LOCAL_FRAME_BYTES = 64 * 1024;

export class LocalServer {
  readonly #server: Server;
  readonly #daemon: PairingDaemon;
  readonly #log: Logger;
  readonly #sockets = new Set<Socket>();
  #path = '';

  constructor(daemon: PairingDaemon, log: Logger) {
    this.#daemon = daemon;
    this.#log = log.child({ component: 'pairing-socket' });
    this.#server = createServer((socket) => this.#accept(socket));
    this.#server.on('error', (error) => this.#log.error({ err: error }, 'pairing socket error'));
  }

  /** Listens on `path`, replacing a socket file left by a process that died. */
  listen(path: string): Promise<void> {
    mkdirSync(dirname(path), { recursive: true, mode: 0o750 });
    if (existsSync(path)) unlinkSync(path);
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

  async close(): Promise<void> {
    const closed = new Promise<void>((resolveClosed) => this.#server.close(() => resolveClosed()));
    for (const socket of this.#sockets) socket.end();
    await closed;
    if (this.#path && existsSync(this.#path)) unlinkSync(this.#path);
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket);
    const decoder = new FrameDecoder(MAX_LOCAL_FRAME_BYTES);
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('error', (error) => this.#log.warn({ err: error }, 'pairing socket connection error'));
    socket.on('data', (chunk: Buffer) => {
      let frames: Buffer[];
      try {
        frames = decoder.push(chunk);
      } catch (error) {
        this.#log.warn({ code: (error as CdrError).code }, 'closing pairing socket connection: bad frame');
        socket.destroy();
        return;
      }

      for (const frame of frames) {
        let request: impcdr.v1.PairingRequest;
        try {
          request = proto.PairingRequest.decode(frame);
        } catch {
          this.#log.warn('closing pairing socket connection: frame is not a PairingRequest');
          socket.destroy();
          return;
        }
        this.#handle(request).then(
          (body) => this.#send(socket, { requestId: request.requestId, ...body }),
          (error: unknown) => {
            const code = error instanceof CdrError ? error.code : 'ERR_PAIR_PROTOCOL';
            if (!(error instanceof CdrError)) {
              this.#log.error({ err: error, body: request.body }, 'pairing request failed');
            }
            this.#send(socket, { requestId: request.requestId, error: { code, message: (error as Error).message } });
          },
        );
      }
    });
  }

  async #handle(request: impcdr.v1.PairingRequest): Promise<Partial<impcdr.v1.IPairingResponse>> {
    const daemon = this.#daemon;
    switch (request.body) {
      case 'open':
        return { opened: daemon.openWindow(request.open?.seconds ?? 0) };
      case 'close':
        return { status: daemon.closeWindow() };
      case 'status':
        return { status: daemon.status() };
      case 'probe':
        return { probe: { hostKeyFingerprint: await daemon.probe(request.probe?.host ?? '', request.probe?.port ?? 0) } };
      case 'join': {
        const join = request.join!;
        return { pairStatus: await daemon.join(join.host ?? '', join.port ?? 0, join.hostKeyFingerprint ?? '', join.code ?? '') };
      }
      case 'unpair':
        return { pairStatus: await daemon.unpair(request.unpair?.localOnly ?? false) };
      default:
        throw new CdrError('ERR_PROTO_UNKNOWN_MESSAGE_TYPE', 'pairing request has no body this daemon knows');
    }
  }

  #send(socket: Socket, response: impcdr.v1.IPairingResponse): void {
    if (!socket.destroyed) socket.write(encodeFrame(proto.PairingResponse.encode(response).finish()));
  }
}
