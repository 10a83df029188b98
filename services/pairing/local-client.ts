/**
 * Client of the pairing daemon's local socket, for cdrctl.
 */

import { connect, type Socket } from 'node:net';

import { CdrError, type ErrorCode } from '../common/errors.js';
import { proto } from '../../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../../modules/protocol/framing.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';

const MAX_RESPONSE_BYTES = 1024 * 1024;

export class PairingClient {
  readonly #socket: Socket;
  readonly #decoder = new FrameDecoder(MAX_RESPONSE_BYTES);
  readonly #pending = new Map<number, { resolve: (response: impcdr.v1.PairingResponse) => void; reject: (error: unknown) => void }>();
  #nextRequestId = 1;

  private constructor(socket: Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const frame of this.#decoder.push(chunk)) {
        const response = proto.PairingResponse.decode(frame);
        const pending = this.#pending.get(Number(response.requestId));
        this.#pending.delete(Number(response.requestId));
        pending?.resolve(response);
      }
    });
    // A socket error is always followed by 'close', which rejects what is pending.
    socket.on('error', () => undefined);
    socket.on('close', () => {
      for (const pending of this.#pending.values()) {
        pending.reject(new CdrError('ERR_PAIR_DAEMON_UNAVAILABLE', 'the pairing daemon closed the connection'));
      }
      this.#pending.clear();
    });
  }

  /** Connects to the pairing daemon's socket. @throws CdrError `ERR_PAIR_DAEMON_UNAVAILABLE` */
  static connect(path: string): Promise<PairingClient> {
    return new Promise((resolveConnect, rejectConnect) => {
      const socket = connect(path);
      socket.once('connect', () => resolveConnect(new PairingClient(socket)));
      socket.once('error', (error: NodeJS.ErrnoException) => {
        const hint = error.code === 'EACCES' ? 'permission denied; run as a member of the imp-cdr group' : 'is imp-cdr-pairing running?';
        rejectConnect(
          new CdrError('ERR_PAIR_DAEMON_UNAVAILABLE', `cannot connect to the pairing socket ${path} (${error.code ?? error.message}): ${hint}`, {
            cause: error,
            details: { path },
          }),
        );
      });
    });
  }

  /** Sends one request and returns its response. @throws CdrError with the daemon's code when it reports an error */
  async call(body: Omit<impcdr.v1.IPairingRequest, 'requestId'>): Promise<impcdr.v1.PairingResponse> {
    const requestId = this.#nextRequestId++;
    const response = await new Promise<impcdr.v1.PairingResponse>((resolveCall, rejectCall) => {
      this.#pending.set(requestId, { resolve: resolveCall, reject: rejectCall });
      this.#socket.write(encodeFrame(proto.PairingRequest.encode({ requestId, ...body }).finish()));
    });
    if (response.error) {
      throw new CdrError((response.error.code as ErrorCode) || 'ERR_PAIR_PROTOCOL', response.error.message ?? 'pairing request failed');
    }
    return response;
  }

  close(): void {
    this.#socket.end();
  }
}
