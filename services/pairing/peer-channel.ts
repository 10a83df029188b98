/**
 * PeerFrame messages over the "cdr-pairing" SSH subsystem channel, one varint-delimited frame each.
 */

import type { Duplex } from 'node:stream';

import { CdrError } from '../common/errors.js';
import { proto } from '../../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../../modules/protocol/framing.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';

/** Largest PeerFrame accepted; an identity with its certificate is about 1 KiB. */
export const MAX_PEER_FRAME_BYTES = 64 * 1024;

/** The SSH subsystem name both daemons use. */
export const PAIRING_SUBSYSTEM = 'cdr-pairing';

export class PeerChannel {
  readonly #stream: Duplex;
  readonly #decoder = new FrameDecoder(MAX_PEER_FRAME_BYTES);
  readonly #frames: impcdr.v1.PeerFrame[] = [];
  #waiter: { resolve: (frame: impcdr.v1.PeerFrame) => void; reject: (error: CdrError) => void } | undefined;
  #failure: CdrError | undefined;

  constructor(stream: Duplex) {
    this.#stream = stream;
    stream.on('data', (chunk: Buffer) => this.#receive(chunk));
    stream.on('close', () => this.#fail(new CdrError('ERR_PAIR_PROTOCOL', 'the other node closed the pairing channel before it finished')));
    stream.on('error', (error: Error) => this.#fail(new CdrError('ERR_PAIR_PROTOCOL', `pairing channel failed: ${error.message}`, { cause: error })));
  }

  send(frame: impcdr.v1.IPeerFrame): void {
    if (!this.#stream.destroyed && this.#stream.writable) {
      this.#stream.write(encodeFrame(proto.PeerFrame.encode(frame).finish()));
    }
  }

  /**
   * Waits for the next frame.
   *
   * @throws CdrError `ERR_PAIR_PROTOCOL` when the channel closes, a frame is malformed, or nothing
   *   arrives within `timeoutMs`
   */
  next(timeoutMs: number): Promise<impcdr.v1.PeerFrame> {
    const queued = this.#frames.shift();
    if (queued) return Promise.resolve(queued);
    if (this.#failure) return Promise.reject(this.#failure);

    return new Promise((resolveNext, rejectNext) => {
      const timer = setTimeout(() => {
        this.#waiter = undefined;
        rejectNext(new CdrError('ERR_PAIR_PROTOCOL', `no pairing message from the other node within ${timeoutMs} ms`));
      }, timeoutMs);
      this.#waiter = {
        resolve: (frame) => {
          clearTimeout(timer);
          resolveNext(frame);
        },
        reject: (error) => {
          clearTimeout(timer);
          rejectNext(error);
        },
      };
    });
  }

  /** Ends the channel after the frames written so far. */
  end(): void {
    if (!this.#stream.destroyed) this.#stream.end();
  }

  #receive(chunk: Buffer): void {
    let payloads: Buffer[];
    try {
      payloads = this.#decoder.push(chunk);
    } catch (error) {
      this.#fail(new CdrError('ERR_PAIR_PROTOCOL', `malformed pairing frame: ${(error as Error).message}`, { cause: error }));
      this.#stream.destroy();
      return;
    }

    for (const payload of payloads) {
      let frame: impcdr.v1.PeerFrame;
      try {
        frame = proto.PeerFrame.decode(payload);
      } catch (error) {
        this.#fail(new CdrError('ERR_PAIR_PROTOCOL', 'a pairing frame is not a PeerFrame', { cause: error }));
        this.#stream.destroy();
        return;
      }
      const waiter = this.#waiter;
      this.#waiter = undefined;
      if (waiter) waiter.resolve(frame);
      else this.#frames.push(frame);
    }
  }

  #fail(error: CdrError): void {
    this.#failure ??= error;
    const waiter = this.#waiter;
    this.#waiter = undefined;
    waiter?.reject(this.#failure);
  }
}

/** Turns an `error` frame into the CdrError it names. */
export function errorFromFrame(error: impcdr.v1.IControlError): CdrError {
  return new CdrError((error.code || 'ERR_PAIR_PROTOCOL') as CdrError['code'], error.message || 'the other node reported an error');
}
