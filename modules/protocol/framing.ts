/**
 * Varint-length-delimited framing, shared by the native IMP protocol and the control socket.
 *
 * Layout of one frame:
 *
 *     +----------------------+---------------------------+
 *     | length (varint, 1-5) | payload (length bytes)    |
 *     +----------------------+---------------------------+
 *
 * The length is an unsigned LEB128 varint, as protobuf writes it before a length-delimited message.
 * A length above the maximum frame size is rejected as soon as the varint is complete, before any of
 * the payload is buffered.
 */

import { CdrError } from '../../services/common/errors.js';

/** Maximum length of the length varint, in bytes: five bytes encode any 32-bit length. */
export const MAX_VARINT_BYTES = 5;

/** Prefixes `payload` with its length as a varint. */
export function encodeFrame(payload: Uint8Array): Buffer {
  const header: number[] = [];
  let length = payload.length;
  while (length >= 0x80) {
    header.push((length & 0x7f) | 0x80);
    length >>>= 7;
  }
  header.push(length);

  const frame = Buffer.allocUnsafe(header.length + payload.length);
  frame.set(header, 0);
  frame.set(payload, header.length);
  return frame;
}

/**
 * Incremental frame reader: `push` takes bytes as they arrive from a stream and returns the payloads of
 * every frame completed so far. A partial frame stays buffered until the rest arrives.
 */
export class FrameDecoder {
  readonly #maxFrameBytes: number;
  #chunks: Buffer[] = [];
  #buffered = 0;
  /** Payload length of the frame being read, or -1 while its varint is incomplete. */
  #expected = -1;
  #failed = false;

  constructor(maxFrameBytes: number) {
    this.#maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet returned as part of a frame. */
  get bufferedBytes(): number {
    return this.#buffered;
  }

  /**
   * Adds `chunk` and returns the completed payloads in order.
   *
   * @throws CdrError `ERR_PROTO_FRAME_TOO_LARGE` when a length exceeds the maximum, and
   *   `ERR_PROTO_MALFORMED_FRAME` when a varint is longer than five bytes. After either, the decoder
   *   rejects every further call because the stream position is lost.
   */
  push(chunk: Buffer): Buffer[] {
    if (this.#failed) {
      throw new CdrError('ERR_PROTO_MALFORMED_FRAME', 'frame decoder already failed on this stream');
    }

    this.#chunks.push(chunk);
    this.#buffered += chunk.length;
    const frames: Buffer[] = [];

    for (;;) {
      if (this.#expected < 0) {
        const length = this.#readLength();
        if (length < 0) {
          break;
        }
        this.#expected = length;
      }

      if (this.#buffered < this.#expected) {
        break;
      }
      frames.push(this.#take(this.#expected));
      this.#expected = -1;
    }

    return frames;
  }

  /** Reads and consumes the varint at the front, or returns -1 when it is not complete yet. */
  #readLength(): number {
    let length = 0;
    let shift = 0;
    let index = 0;

    for (const chunk of this.#chunks) {
      for (const byte of chunk) {
        index += 1;
        length += (byte & 0x7f) * 2 ** shift;
        shift += 7;

        if ((byte & 0x80) === 0) {
          if (length > this.#maxFrameBytes) {
            this.#failed = true;
            throw new CdrError(
              'ERR_PROTO_FRAME_TOO_LARGE',
              `frame of ${length} bytes exceeds the maximum of ${this.#maxFrameBytes} bytes`,
              { details: { length, maxFrameBytes: this.#maxFrameBytes } },
            );
          }
          this.#take(index);
          return length;
        }

        if (index >= MAX_VARINT_BYTES) {
          this.#failed = true;
          throw new CdrError('ERR_PROTO_MALFORMED_FRAME', `frame length varint is longer than ${MAX_VARINT_BYTES} bytes`);
        }
      }
    }
    return -1;
  }

  /** Removes `count` bytes from the front of the buffer and returns them as one Buffer. */
  #take(count: number): Buffer {
    const taken = Buffer.allocUnsafe(count);
    let offset = 0;

    while (offset < count) {
      const head = this.#chunks[0]!;
      const needed = count - offset;
      if (head.length <= needed) {
        head.copy(taken, offset);
        offset += head.length;
        this.#chunks.shift();
      } else {
        head.copy(taken, offset, 0, needed);
        this.#chunks[0] = head.subarray(needed);
        offset += needed;
      }
    }

    this.#buffered -= count;
    return taken;
  }
}
