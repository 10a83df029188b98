/**
 * Hybrid logical clock (Kulkarni et al., "Logical Physical Clocks", 2014): a timestamp that follows
 * wall-clock time but never goes backwards and always moves past every timestamp received. Ordering
 * administrator records by it, with the node id as tie-break, makes last-writer-wins agree on both
 * nodes even when their clocks disagree.
 */

/** A timestamp: `wallMs` is milliseconds since the epoch, `counter` orders events within one millisecond. */
export interface HlcTimestamp {
  wallMs: number;
  counter: number;
  nodeId: string;
}

export class HybridLogicalClock {
  #wallMs = 0;
  #counter = 0;
  readonly #nodeId: string;
  readonly #now: () => number;

  constructor(nodeId: string, now: () => number = Date.now) {
    this.#nodeId = nodeId;
    this.#now = now;
  }

  /** Returns a timestamp for a local event. */
  tick(): HlcTimestamp {
    const physical = this.#now();
    if (physical > this.#wallMs) {
      this.#wallMs = physical;
      this.#counter = 0;
    } else {
      this.#counter += 1;
    }
    return { wallMs: this.#wallMs, counter: this.#counter, nodeId: this.#nodeId };
  }

  /** Moves the clock past a timestamp received from another node. */
  observe(remote: HlcTimestamp): void {
    const physical = this.#now();
    const wallMs = Math.max(this.#wallMs, remote.wallMs, physical);
    if (wallMs === this.#wallMs && wallMs === remote.wallMs) {
      this.#counter = Math.max(this.#counter, remote.counter) + 1;
    } else if (wallMs === this.#wallMs) {
      this.#counter += 1;
    } else if (wallMs === remote.wallMs) {
      this.#counter = remote.counter + 1;
    } else {
      this.#counter = 0;
    }
    this.#wallMs = wallMs;
  }
}

/** Orders two timestamps: negative when `a` is earlier, positive when later, 0 when equal. */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.wallMs !== b.wallMs) return a.wallMs - b.wallMs;
  if (a.counter !== b.counter) return a.counter - b.counter;
  if (a.nodeId === b.nodeId) return 0;
  return a.nodeId < b.nodeId ? -1 : 1;
}
