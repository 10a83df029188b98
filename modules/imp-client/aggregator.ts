/**
 * Sums counter deltas per object and per reporting interval, so an IMP sends one observation per object
 * and interval instead of one per SMTP session.
 */

import { kindToWire, type ObjectKindName } from '../protocol/constants.js';
import { COUNTER_FIELDS, type CounterValues } from '../protocol/counters.js';
import type { impcdr } from '../protocol/generated/messages.js';

interface Entry {
  kind: ObjectKindName;
  key: string;
  intervalStartMs: number;
  counters: Partial<CounterValues>;
}

export class Aggregator {
  readonly intervalMs: number;
  readonly #entries = new Map<string, Entry>();

  /** @param intervalMs - width of an interval in milliseconds; intervals start at multiples of it since the Unix epoch */
  constructor(intervalMs: number) {
    this.intervalMs = intervalMs;
  }

  /** Objects with counts not yet taken. */
  get size(): number {
    return this.#entries.size;
  }

  /** Returns the start of the interval that contains `timeMs`. */
  intervalStart(timeMs: number): number {
    return Math.floor(timeMs / this.intervalMs) * this.intervalMs;
  }

  /** Adds `counters` to the entry of `kind`/`key` in the interval that contains `timeMs`. */
  add(kind: ObjectKindName, key: string, counters: Partial<CounterValues>, timeMs: number): void {
    const intervalStartMs = this.intervalStart(timeMs);
    const id = `${intervalStartMs}\u0000${kind}\u0000${key}`;
    let entry = this.#entries.get(id);
    if (!entry) {
      entry = { kind, key, intervalStartMs, counters: {} };
      this.#entries.set(id, entry);
    }
    for (const field of COUNTER_FIELDS) {
      const value = counters[field];
      if (value) {
        entry.counters[field] = (entry.counters[field] ?? 0) + value;
      }
    }
  }

  /**
   * Removes and returns the observations of every interval that started before `beforeMs`; with no
   * argument, of every interval.
   */
  take(beforeMs = Number.POSITIVE_INFINITY): impcdr.v1.IObservation[] {
    const taken: impcdr.v1.IObservation[] = [];
    for (const [id, entry] of this.#entries) {
      if (entry.intervalStartMs >= beforeMs) {
        continue;
      }
      this.#entries.delete(id);
      taken.push({ object: { kind: kindToWire(entry.kind), key: entry.key }, intervalStartMs: entry.intervalStartMs, counters: entry.counters });
    }
    return taken;
  }
}
