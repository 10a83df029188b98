/**
 * The IMP's lookup cache. A cached reputation stays valid for its `ttl_seconds`. A `ReputationChanged`
 * push for a subscribed key replaces it at once and restarts its TTL.
 */

import type { ObjectKindName } from '../protocol/constants.js';
import type { impcdr } from '../protocol/generated/messages.js';

export interface CacheCounters {
  /** Keys served from the cache. */
  hits: number;
  /** Keys that needed the repository. */
  misses: number;
  /** Lookup requests sent to the repository. */
  roundTrips: number;
  /** Lookup calls served entirely from the cache, so without a round trip. */
  roundTripsSaved: number;
  /** Cached answers replaced by a push. */
  pushes: number;
}

interface CachedAnswer {
  reputation: impcdr.v1.IReputation;
  expiresMs: number;
}

/** Returns the cache id of a key; the caller passes keys in the form the repository returns them. */
export function cacheId(kind: ObjectKindName, key: string): string {
  return `${kind}\u0000${key}`;
}

export class LookupCache {
  readonly #entries = new Map<string, CachedAnswer>();
  /** Id of the key as requested to the id of the normalised key the repository returned. */
  readonly #aliases = new Map<string, string>();
  readonly #maxEntries: number;
  readonly counters: CacheCounters = { hits: 0, misses: 0, roundTrips: 0, roundTripsSaved: 0, pushes: 0 };

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  get size(): number {
    return this.#entries.size;
  }

  /** Returns the cached answer when it has not expired at `nowMs`; an expired one is removed. */
  get(requestedId: string, nowMs: number): impcdr.v1.IReputation | undefined {
    const id = this.#aliases.get(requestedId) ?? requestedId;
    const entry = this.#entries.get(id);
    if (!entry) {
      return undefined;
    }
    if (entry.expiresMs <= nowMs) {
      this.#entries.delete(id);
      return undefined;
    }
    return entry.reputation;
  }

  /**
   * Stores an answer under the id of its normalised key until `nowMs` plus its TTL, and remembers that
   * `requestedId` names it. An answer with TTL 0 is not stored.
   */
  set(requestedId: string, id: string, reputation: impcdr.v1.IReputation, nowMs: number): void {
    const ttlMs = (reputation.ttlSeconds ?? 0) * 1000;
    if (ttlMs <= 0) {
      return;
    }
    if (requestedId !== id) {
      this.#aliases.set(requestedId, id);
    }
    // Map order is insertion order, so deleting first moves the key to the newest end.
    this.#entries.delete(id);
    this.#entries.set(id, { reputation, expiresMs: nowMs + ttlMs });

    while (this.#entries.size > this.#maxEntries) {
      const oldest = this.#entries.keys().next().value as string;
      this.#entries.delete(oldest);
    }
    if (this.#aliases.size > this.#maxEntries) {
      // Aliases of evicted entries resolve to nothing; dropping the oldest half bounds the map.
      const excess = [...this.#aliases.keys()].slice(0, this.#aliases.size - Math.floor(this.#maxEntries / 2));
      excess.forEach((alias) => this.#aliases.delete(alias));
    }
  }

  /** Replaces a cached answer with a pushed one; a key that is not cached is ignored. */
  applyPush(id: string, reputation: impcdr.v1.IReputation, nowMs: number): boolean {
    if (!this.#entries.has(id)) {
      return false;
    }
    this.counters.pushes += 1;
    this.set(id, id, reputation, nowMs);
    return true;
  }

  /** Cached ids, oldest first. */
  ids(): string[] {
    return [...this.#entries.keys()];
  }

  clear(): void {
    this.#entries.clear();
    this.#aliases.clear();
  }
}
