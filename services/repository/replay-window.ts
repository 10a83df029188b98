/**
 * Per-IMP record of applied Observe sequence numbers: the highest one and a bitmap of the
 * `REPLAY_WINDOW_SIZE` below it, as in the anti-replay window of IPsec (RFC 4303, section 3.4.3).
 * A batch that was rejected (for example as busy) and re-sent after later batches were applied is
 * still counted once, as long as it is within the window.
 */

/** Sequence numbers tracked below the highest one. */
export const REPLAY_WINDOW_SIZE = 1024;

/** Stored form: `bits` is hex, bit i set when sequence `high - i` was applied. */
export interface StoredReplayWindow {
  high: number;
  bits: string;
}

export type SequenceCheck = 'new' | 'duplicate' | 'too-old';

export class ReplayWindow {
  high: number;
  readonly #bits: Uint8Array;

  constructor(stored?: StoredReplayWindow | number) {
    this.#bits = new Uint8Array(REPLAY_WINDOW_SIZE / 8);
    if (typeof stored === 'number') {
      this.high = stored;
      if (stored > 0) this.#bits[0] = 1;
    } else if (stored) {
      this.high = stored.high;
      this.#bits.set(Buffer.from(stored.bits, 'hex').subarray(0, this.#bits.length));
    } else {
      this.high = 0;
    }
  }

  /** Classifies `sequence`: above the window or unseen within it is new; older than the window is too old. */
  check(sequence: number): SequenceCheck {
    if (sequence > this.high) {
      return 'new';
    }
    const offset = this.high - sequence;
    if (offset >= REPLAY_WINDOW_SIZE) {
      return 'too-old';
    }
    return this.#get(offset) ? 'duplicate' : 'new';
  }

  /** Records `sequence` as applied, sliding the window up when it is the new highest. */
  mark(sequence: number): void {
    if (sequence > this.high) {
      this.#shift(sequence - this.high);
      this.high = sequence;
    }
    const offset = this.high - sequence;
    if (offset < REPLAY_WINDOW_SIZE) {
      this.#bits[offset >> 3]! |= 1 << (offset & 7);
    }
  }

  /** Adds every sequence `other` has applied, as when merging a replica's window into this one. */
  merge(other: ReplayWindow): void {
    if (other.high > this.high) {
      this.#shift(other.high - this.high);
      this.high = other.high;
    }
    const offset = this.high - other.high;
    for (let index = 0; index + offset < REPLAY_WINDOW_SIZE; index++) {
      if (other.#get(index)) {
        const target = index + offset;
        this.#bits[target >> 3]! |= 1 << (target & 7);
      }
    }
  }

  toStored(): StoredReplayWindow {
    return { high: this.high, bits: Buffer.from(this.#bits).toString('hex') };
  }

  clone(): ReplayWindow {
    return new ReplayWindow(this.toStored());
  }

  #get(offset: number): boolean {
    return (this.#bits[offset >> 3]! & (1 << (offset & 7))) !== 0;
  }

  /** Moves every bit `count` offsets further from the top; bits past the window fall off. */
  #shift(count: number): void {
    if (count >= REPLAY_WINDOW_SIZE) {
      this.#bits.fill(0);
      return;
    }
    for (let offset = REPLAY_WINDOW_SIZE - 1; offset >= 0; offset--) {
      const source = offset - count;
      const set = source >= 0 && this.#get(source);
      if (set) {
        this.#bits[offset >> 3]! |= 1 << (offset & 7);
      } else {
        this.#bits[offset >> 3]! &= ~(1 << (offset & 7));
      }
    }
  }
}
