/**
 * Client of the repository's control socket, for cdrctl and the other local daemons.
 */

import { connect, type Socket } from 'node:net';

import { CdrError, type ErrorCode } from '../../services/common/errors.js';
import { proto } from './constants.js';
import { encodeFrame, FrameDecoder } from './framing.js';
import type { impcdr } from './generated/messages.js';

/** Largest control response accepted, in bytes. */
const MAX_RESPONSE_BYTES = 64 * 1024 * 1024;

export class ControlClient {
  readonly #socket: Socket;
  readonly #decoder = new FrameDecoder(MAX_RESPONSE_BYTES);
  readonly #pending = new Map<number, { resolve: (response: impcdr.v1.ControlResponse) => void; reject: (error: unknown) => void }>();
  #nextRequestId = 1;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.#decoder.push(chunk)) {
        const response = proto.ControlResponse.decode(frame);
        const pending = this.#pending.get(Number(response.requestId));
        this.#pending.delete(Number(response.requestId));
        pending?.resolve(response);
      }
    });
    // A socket error is always followed by 'close', which rejects what is pending; without this
    // listener the error would be thrown and end the process.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const pending of this.#pending.values()) {
        pending.reject(new CdrError('ERR_CONTROL_UNAVAILABLE', 'the repository closed the control connection'));
      }
      this.#pending.clear();
    });
  }

  /**
   * Connects to the control socket at `path`.
   *
   * @throws CdrError `ERR_CONTROL_UNAVAILABLE` when nothing listens there or access is denied
   */
  static connect(path: string): Promise<ControlClient> {
    return new Promise((resolveConnect, rejectConnect) => {
      const socket = connect(path);
      socket.once('connect', () => resolveConnect(new ControlClient(socket)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        const hint = error.code === 'EACCES' ? 'permission denied; run as a member of the imp-cdr group' : 'is the repository running?';
        rejectConnect(
          new CdrError('ERR_CONTROL_UNAVAILABLE', `cannot connect to the control socket ${path} (${error.code ?? error.message}): ${hint}`, {
            cause: error,
            details: { path },
          }),
        );
      });
    });
  }

  /**
   * Sends one request and returns its response body.
   *
   * @throws CdrError with the repository's code when the response is an error
   */
  async call(body: Omit<impcdr.v1.IControlRequest, 'requestId'>): Promise<impcdr.v1.ControlResponse> {
    const requestId = this.#nextRequestId++;
    const response = await new Promise<impcdr.v1.ControlResponse>((resolveCall, rejectCall) => {
      this.#pending.set(requestId, { resolve: resolveCall, reject: rejectCall });
      this.#socket.write(encodeFrame(proto.ControlRequest.encode({ requestId, ...body }).finish()));
    });
    if (response.error) {
      throw new CdrError((response.error.code as ErrorCode) || 'ERR_CONTROL_REQUEST', response.error.message ?? 'control request failed');
    }
    return response;
  }

  close(): void {
    this.#socket.end();
  }
}
