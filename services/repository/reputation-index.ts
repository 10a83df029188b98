/**
 * The consolidated reputation index: the LevelDB store, the policy in force and the hot cache in front
 * of them.
 */

import type { Logger } from '../common/logger.js';
import { CdrError } from '../common/errors.js';
import type { ObjectKindName } from '../../modules/protocol/constants.js';
import { normaliseKey } from './keys.js';
import { computeReputation, DEFAULT_POLICY_YAML, parsePolicy, type PolicyDocument, type ReputationResult } from './reputation.js';
import type { HybridLogicalClock } from './hlc.js';
import { IndexStore, objectId, type PreparedObservation, type StoredPolicy } from './store.js';
import type { FeedListing } from './feeds/feed-manager.js';
import { applyListings } from './feeds/listing-score.js';

/** A lookup answer for one normalised key. */
export interface ObjectReputation extends ReputationResult {
  kind: ObjectKindName;
  key: string;
  firstSeenMs: number;
  lastSeenMs: number;
  /** Listings of the object by the feeds in force; each listing's category weighs in the score. */
  listings: FeedListing[];
}

interface CacheEntry {
  value: ObjectReputation;
  computedMs: number;
}

export interface ReputationIndexOptions {
  store: IndexStore;
  log: Logger;
  bucketSeconds: number;
  retentionDays: number;
  cacheMaxEntries: number;
  cacheMaxAgeMs: number;
  clock: HybridLogicalClock;
  now?: () => number;
}

/** Cache hit and miss counts since start. */
export interface CacheStats {
  hits: number;
  misses: number;
  entries: number;
}

export class ReputationIndex {
  readonly #store: IndexStore;
  readonly #log: Logger;
  readonly #bucketSeconds: number;
  readonly #retentionSeconds: number;
  readonly #cacheMaxEntries: number;
  readonly #cacheMaxAgeMs: number;
  readonly #now: () => number;
  readonly #clock: HybridLogicalClock;
  /** Insertion order is recency order: a hit moves the entry to the end. */
  readonly #cache = new Map<string, CacheEntry>();
  #policy!: PolicyDocument;
  #storedPolicy!: StoredPolicy;
  #hits = 0;
  #misses = 0;

  /** Returns the external listings of a normalised key (feeds and query-through DNSBLs); set by `ExternalSources`. */
  listingSource: (kind: ObjectKindName, key: string) => FeedListing[] | Promise<FeedListing[]> = () => [];

  /** Called after each commit with the ids of objects whose counters changed, after the cache dropped them. */
  onChange: (touched: Set<string>) => void = () => {};

  private constructor(options: ReputationIndexOptions) {
    this.#store = options.store;
    this.#log = options.log;
    this.#bucketSeconds = options.bucketSeconds;
    this.#retentionSeconds = options.retentionDays * 86_400;
    this.#cacheMaxEntries = options.cacheMaxEntries;
    this.#cacheMaxAgeMs = options.cacheMaxAgeMs;
    this.#now = options.now ?? Date.now;
    this.#clock = options.clock;
  }

  /** Loads the policy in force, storing the embedded default on a new index. */
  static async create(options: ReputationIndexOptions): Promise<ReputationIndex> {
    const index = new ReputationIndex(options);

    let stored = await options.store.getPolicy();
    if (!stored) {
      // The default carries no clock timestamp, so any policy an administrator applied on the peer wins over it.
      stored = { version: parsePolicy(DEFAULT_POLICY_YAML, 'embedded default policy').version, yaml: DEFAULT_POLICY_YAML, appliedMs: Date.now() };
      await options.store.putPolicy(stored);
      options.log.info({ policyVersion: stored.version }, 'stored the embedded default policy');
    }
    index.#storedPolicy = stored;
    index.#policy = parsePolicy(stored.yaml, `stored policy version ${stored.version}`);

    options.store.onCommit = (touched) => {
      for (const id of touched) {
        index.#cache.delete(id);
      }
      index.onChange(touched);
    };
    return index;
  }

  get policy(): StoredPolicy {
    return this.#storedPolicy;
  }

  get store(): IndexStore {
    return this.#store;
  }

  /** Empties the cache, for example after a feed version came into force. */
  clearCache(): void {
    this.#cache.clear();
  }

  cacheStats(): CacheStats {
    return { hits: this.#hits, misses: this.#misses, entries: this.#cache.size };
  }

  /**
   * Validates `yamlText` and makes it the policy in force. The cache is emptied so every later answer
   * uses the new policy.
   *
   * @throws CdrError `ERR_POLICY_PARSE`, `ERR_POLICY_INVALID`, or `ERR_POLICY_VERSION_NOT_NEWER` when the
   *   document's version is not above the version in force; the policy in force stays unchanged
   */
  async setPolicy(yamlText: string, sourceName: string): Promise<StoredPolicy> {
    const policy = parsePolicy(yamlText, sourceName);
    if (policy.version <= this.#policy.version) {
      throw new CdrError(
        'ERR_POLICY_VERSION_NOT_NEWER',
        `${sourceName}: version ${policy.version} is not above the version in force, ${this.#policy.version}; ` +
          `raise "version" and apply again`,
        { details: { version: policy.version, current: this.#policy.version } },
      );
    }

    const stored: StoredPolicy = { version: policy.version, yaml: yamlText, appliedMs: this.#now(), hlc: this.#clock.tick() };
    await this.#store.putPolicy(stored);
    this.#policy = policy;
    this.#storedPolicy = stored;
    this.#cache.clear();
    this.#log.info({ policyVersion: policy.version, source: sourceName }, 'policy applied');
    return stored;
  }

  /** Reads the policy in force again, after replication replaced it. */
  async reloadPolicy(): Promise<void> {
    const stored = await this.#store.getPolicy();
    if (!stored || stored.version === this.#storedPolicy.version && stored.appliedMs === this.#storedPolicy.appliedMs) {
      return;
    }
    this.#policy = parsePolicy(stored.yaml, `replicated policy version ${stored.version}`);
    this.#storedPolicy = stored;
    this.#cache.clear();
    if (stored.hlc) {
      this.#clock.observe(stored.hlc);
    }
    this.#log.info({ policyVersion: stored.version, from: stored.hlc?.nodeId }, 'replicated policy in force');
  }

  /** Counts a prepared Observe batch; see `IndexStore.observe`. */
  observe(impId: string, sequence: number, observations: PreparedObservation[]): Promise<{ duplicate: boolean }> {
    return this.#store.observe(impId, sequence, observations);
  }

  /**
   * Returns the reputation of a key, normalising it first.
   *
   * @param fresh - bypass the cache, as pushes to subscribers do
   * @throws CdrError `ERR_KEY_INVALID`
   */
  async lookup(kind: ObjectKindName, rawKey: string, fresh = false): Promise<ObjectReputation> {
    const { key } = normaliseKey(kind, rawKey);
    return this.lookupNormalised(kind, key, fresh);
  }

  /** Returns the reputation of an already normalised key. */
  async lookupNormalised(kind: ObjectKindName, key: string, fresh = false): Promise<ObjectReputation> {
    const id = objectId(kind, key);
    const now = this.#now();

    const cached = fresh ? undefined : this.#cache.get(id);
    if (cached && now - cached.computedMs <= this.#cacheMaxAgeMs) {
      this.#hits += 1;
      this.#cache.delete(id);
      this.#cache.set(id, cached);
      return cached.value;
    }
    this.#misses += 1;

    const policyAtStart = this.#policy;
    const sinceSeconds = Math.floor((now / 1000 - this.#retentionSeconds) / this.#bucketSeconds) * this.#bucketSeconds;
    const { record, buckets } = await this.#store.readObject(kind, key, Math.max(0, sinceSeconds));
    const listings = await this.listingSource(kind, key);
    const result = applyListings(policyAtStart, computeReputation(policyAtStart, buckets, this.#bucketSeconds, now), listings);
    const value: ObjectReputation = {
      kind,
      key,
      ...result,
      firstSeenMs: record?.firstSeenMs ?? 0,
      lastSeenMs: record?.lastSeenMs ?? 0,
      listings,
    };

    // NOTE: a commit that lands while this read runs drops the key from the cache before the read stores
    // its older value. That value is then served for at most cacheMaxAgeMs.
    if (this.#cacheMaxEntries > 0 && policyAtStart === this.#policy) {
      this.#cache.delete(id);
      this.#cache.set(id, { value, computedMs: now });
      if (this.#cache.size > this.#cacheMaxEntries) {
        this.#cache.delete(this.#cache.keys().next().value!);
      }
    }
    return value;
  }
}
