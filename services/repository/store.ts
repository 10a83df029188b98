/**
 * The LevelDB index. This process is the only one that opens it.
 *
 * Key layout (UTF-8 strings, fields separated by NUL, which no normalised key contains):
 *
 *     o NUL kind NUL key                          -> { firstSeenMs, lastSeenMs }
 *     c NUL kind NUL key NUL bucket NUL nodeId    -> counter vector (COUNTER_FIELDS order), absolute values
 *     s NUL impId                                 -> replay window of that IMP's applied Observe sequences
 *     n NUL kind                                  -> number of objects of that kind
 *     l NUL logSequence                           -> replication log entry { t: commit ms, puts: [[key, value]] }
 *     m NUL logseq                                -> last replication log sequence written
 *     r NUL peerNodeId                            -> last sequence of that peer's log applied here
 *     a NUL timeMs NUL n                          -> audit entry: a replication conflict and its outcome
 *     p NUL current                               -> policy in force { version, yaml, appliedMs, hlc }
 *     p NUL v NUL version                         -> every policy applied, by version
 *     f NUL d NUL feedId                          -> feed definition, or its tombstone after removal
 *     f NUL v NUL feedId                          -> feed version in force: metadata of the last good import
 *     f NUL r NUL feedId                          -> feed's last successful refresh, on either node
 *     f NUL b NUL feedId NUL sha256 NUL chunk     -> raw bytes of the version with that SHA-256, base64, in chunks
 *     f NUL s NUL feedId                          -> feed status of this node: last attempt and error
 *
 * `bucket` is the bucket's start in Unix seconds as 10 hex digits and `logSequence` 16 hex digits, so
 * that byte order is time order. Counter slots belong to one node each and only grow, so replicas can
 * merge them by maximum (see store-merge.ts for every rule). Object counts (`n`), the log, checkpoints,
 * audit entries and feed status (`f NUL s`) are local to the node; feeds/feed-records.ts describes the
 * feed records.
 */

import { ClassicLevel } from 'classic-level';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { OBJECT_KINDS, type ObjectKindName } from '../../modules/protocol/constants.js';
import { COUNTER_FIELDS } from '../../modules/protocol/counters.js';
import type { BucketCounters } from './reputation.js';
import { ReplayWindow, type StoredReplayWindow } from './replay-window.js';
import type { HlcTimestamp } from './hlc.js';
import { feedIdOfIndexKey } from './feeds/feed-records.js';
import { isReplicatedKey, mergeValue, REPLICATED_PREFIXES } from './store-merge.js';

const SEP = '\u0000';
const END = '\uffff';

/** One observation, validated and normalised, ready to be counted. */
export interface PreparedObservation {
  kind: ObjectKindName;
  key: string;
  parents: { kind: ObjectKindName; key: string }[];
  /** Start of the observed interval, Unix time in milliseconds. */
  intervalStartMs: number;
  vector: number[];
}

export interface ObjectRecord {
  firstSeenMs: number;
  lastSeenMs: number;
}

export interface StoredPolicy {
  version: number;
  yaml: string;
  appliedMs: number;
  /** When and where the policy was applied; replicas keep the later one. Absent on policies stored before replication. */
  hlc?: HlcTimestamp;
}

/** The changes that `IndexStore.applyRemote` made. */
export interface RemoteApplyResult {
  /** Ids (see `objectId`) of objects whose counters or records changed. */
  touched: Set<string>;
  /** Whether the policy in force changed. */
  policyChanged: boolean;
  /** Ids of feeds with a changed definition, version, refresh record or chunk. */
  feedIds: Set<string>;
}

/** A write to a feed record, its key without the `f NUL` prefix. */
export type FeedRecordOperation = { type: 'put'; key: string; value: unknown } | { type: 'del'; key: string };

/** Read access to the feed records inside `IndexStore.transactFeedRecords`. */
export interface FeedRecordReader {
  get(key: string): Promise<unknown>;
  getMany(keys: string[]): Promise<unknown[]>;
  /** Keys (without the `f NUL` prefix) that start with `prefix`, in key order. */
  keys(prefix: string): Promise<string[]>;
}

/** Operations that `transactFeedRecords` writes in one batch. */
export interface FeedTransaction {
  /** Records that replicate. Each is merged into the stored value and logged only when it changes it. */
  replicated: [string, unknown][];
  /** Writes that are neither merged nor logged: the local status, and deletions of local copies. */
  local: FeedRecordOperation[];
}

/** One replication log entry as stored and as sent to the peer. */
export interface LogEntry {
  sequence: number;
  committedMs: number;
  puts: [string, unknown][];
  /** `puts` as JSON, when `readLog` measured the entry against a byte budget. */
  putsJson?: string;
}

export interface IndexStoreOptions {
  location: string;
  nodeId: string;
  bucketSeconds: number;
  log: Logger;
}

interface ObserveJob {
  impId: string;
  sequence: number;
  observations: PreparedObservation[];
  resolve: (outcome: { duplicate: boolean }) => void;
  reject: (error: unknown) => void;
}

type Json =
  | number
  | string
  | number[]
  | ObjectRecord
  | StoredPolicy
  | StoredReplayWindow
  | { t: number; puts: [string, unknown][] }
  | Record<string, unknown>;

/** Returns the cache and subscription key of an object. */
export function objectId(kind: ObjectKindName, key: string): string {
  return `${kind}${SEP}${key}`;
}

/**
 * LevelDB index with a single writer. Concurrent Observe batches are committed together in one
 * synchronous LevelDB batch (group commit), so one fsync acknowledges many of them.
 */
export class IndexStore {
  readonly #db: ClassicLevel<string, Json>;
  readonly #nodeId: string;
  readonly #bucketSeconds: number;
  readonly #log: Logger;
  readonly #windows = new Map<string, ReplayWindow>();
  readonly #objectCounts = new Map<ObjectKindName, number>();
  #queue: ObserveJob[] = [];
  #writing: Promise<void> | undefined;
  #logSequence = 0;
  /** Serialises every write that appends to the log, so log sequences follow commit order. */
  #writeLock: Promise<unknown> = Promise.resolve();
  #auditCounter = 0;

  /** Called after each local log append with the new head sequence. */
  onAppend: (sequence: number) => void = () => {};

  /** Called after each commit with the ids (see `objectId`) of every object whose counters changed. */
  onCommit: (touched: Set<string>) => void = () => {};

  private constructor(db: ClassicLevel<string, Json>, options: IndexStoreOptions) {
    this.#db = db;
    this.#nodeId = options.nodeId;
    this.#bucketSeconds = options.bucketSeconds;
    this.#log = options.log;
  }

  /**
   * Opens (or creates) the index at `options.location`.
   *
   * @throws CdrError `ERR_INDEX_LOCKED` when another process holds it, `ERR_INDEX_OPEN` otherwise
   */
  static async open(options: IndexStoreOptions): Promise<IndexStore> {
    const db = new ClassicLevel<string, Json>(options.location, { keyEncoding: 'utf8', valueEncoding: 'json' });
    try {
      await db.open();
    } catch (error) {
      const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
      if (code === 'LEVEL_LOCKED') {
        throw new CdrError('ERR_INDEX_LOCKED', `another process holds the index at ${options.location}`, {
          cause: error,
          details: { location: options.location },
        });
      }
      throw new CdrError('ERR_INDEX_OPEN', `cannot open the index at ${options.location}: ${(error as Error).message}`, {
        cause: error,
        details: { location: options.location },
      });
    }

    const store = new IndexStore(db, options);
    await store.#loadMeta();
    return store;
  }

  async #loadMeta(): Promise<void> {
    for (const kind of OBJECT_KINDS) {
      this.#objectCounts.set(kind, Number((await this.#db.get(`n${SEP}${kind}`)) ?? 0));
    }
    this.#logSequence = Number((await this.#db.get(`m${SEP}logseq`)) ?? 0);
  }

  /** Runs `action` after every earlier write has finished, and before any later one starts. */
  #exclusive<T>(action: () => Promise<T>): Promise<T> {
    const run = this.#writeLock.then(action, action);
    this.#writeLock = run.catch(() => undefined);
    return run;
  }

  /** Last sequence written to this node's replication log. */
  get logHead(): number {
    return this.#logSequence;
  }

  /** Number of objects of each kind. */
  objectCounts(): Record<ObjectKindName, number> {
    return Object.fromEntries(OBJECT_KINDS.map((kind) => [kind, this.#objectCounts.get(kind) ?? 0])) as Record<
      ObjectKindName,
      number
    >;
  }

  /** Highest Observe sequence applied for `impId`, 0 when none. */
  async lastSequence(impId: string): Promise<number> {
    return (await this.#window(impId)).high;
  }

  async #window(impId: string): Promise<ReplayWindow> {
    let window = this.#windows.get(impId);
    if (!window) {
      const stored = (await this.#db.get(`s${SEP}${impId}`)) as StoredReplayWindow | number | undefined;
      window = new ReplayWindow(stored);
      this.#windows.set(impId, window);
    }
    return window;
  }

  /**
   * Counts one Observe batch of `impId`. Resolves once the batch is on disk (LevelDB write with
   * `sync: true`). `duplicate` is true when `sequence` was applied before, or is older than the replay
   * window, in which case nothing was counted.
   */
  observe(impId: string, sequence: number, observations: PreparedObservation[]): Promise<{ duplicate: boolean }> {
    return new Promise((resolve, reject) => {
      this.#queue.push({ impId, sequence, observations, resolve, reject });
      if (!this.#writing) {
        this.#writing = this.#drain().finally(() => {
          this.#writing = undefined;
        });
      }
    });
  }

  /** Writes queued jobs group by group until the queue is empty. */
  async #drain(): Promise<void> {
    while (this.#queue.length > 0) {
      const jobs = this.#queue;
      this.#queue = [];
      try {
        await this.#exclusive(() => this.#commit(jobs));
      } catch (error) {
        this.#log.error({ err: error, jobs: jobs.length }, 'index write failed; batches not acknowledged');
        for (const job of jobs) {
          job.reject(error);
        }
      }
    }
  }

  async #commit(jobs: ObserveJob[]): Promise<void> {
    const slots = new Map<string, number[]>();
    const records = new Map<string, ObjectRecord>();
    const windows = new Map<string, ReplayWindow>();
    const outcomes: boolean[] = [];
    const touched = new Set<string>();
    const newObjects = new Map<ObjectKindName, number>();

    // Step 1: decide which jobs are duplicates and collect the slot and record keys they touch.
    const accepted: ObserveJob[] = [];
    for (const job of jobs) {
      let window = windows.get(job.impId);
      if (!window) {
        window = (await this.#window(job.impId)).clone();
        windows.set(job.impId, window);
      }
      const check = window.check(job.sequence);
      if (check === 'too-old') {
        this.#log.warn({ impId: job.impId, sequence: job.sequence, high: window.high }, 'Observe sequence is older than the replay window; treated as a duplicate');
      }
      outcomes.push(check !== 'new');
      if (check === 'new') {
        window.mark(job.sequence);
        accepted.push(job);
      }
    }

    const slotKeys = new Set<string>();
    const recordKeys = new Set<string>();
    for (const job of accepted) {
      for (const observation of job.observations) {
        for (const target of [observation, ...observation.parents]) {
          slotKeys.add(this.#slotKey(target.kind, target.key, observation.intervalStartMs));
          recordKeys.add(`o${SEP}${objectId(target.kind, target.key)}`);
        }
      }
    }

    // Step 2: read the current values in two round trips.
    const slotList = [...slotKeys];
    const slotValues = await this.#db.getMany(slotList);
    slotList.forEach((key, index) => slots.set(key, (slotValues[index] as number[] | undefined)?.slice() ?? zeroVector()));
    const recordList = [...recordKeys];
    const recordValues = await this.#db.getMany(recordList);
    const existing = new Set<string>();
    recordList.forEach((key, index) => {
      const value = recordValues[index] as ObjectRecord | undefined;
      if (value) {
        records.set(key, { ...value });
        existing.add(key);
      }
    });

    // Step 3: add the deltas.
    for (const job of accepted) {
      for (const observation of job.observations) {
        for (const target of [observation, ...observation.parents]) {
          const slot = slots.get(this.#slotKey(target.kind, target.key, observation.intervalStartMs))!;
          observation.vector.forEach((delta, index) => {
            slot[index]! += delta;
          });

          const recordKey = `o${SEP}${objectId(target.kind, target.key)}`;
          const record = records.get(recordKey);
          if (record) {
            record.firstSeenMs = Math.min(record.firstSeenMs, observation.intervalStartMs);
            record.lastSeenMs = Math.max(record.lastSeenMs, observation.intervalStartMs);
          } else {
            records.set(recordKey, { firstSeenMs: observation.intervalStartMs, lastSeenMs: observation.intervalStartMs });
            newObjects.set(target.kind, (newObjects.get(target.kind) ?? 0) + 1);
          }
          touched.add(objectId(target.kind, target.key));
        }
      }
    }

    // Step 4: one atomic batch with the data, the sequences and the replication log entry.
    const puts: [string, Json][] = [];
    for (const [key, vector] of slots) {
      puts.push([key, vector]);
    }
    for (const [key, record] of records) {
      puts.push([key, record]);
    }
    for (const [impId, window] of windows) {
      puts.push([`s${SEP}${impId}`, window.toStored()]);
    }

    const counts = new Map(this.#objectCounts);
    for (const [kind, added] of newObjects) {
      counts.set(kind, (counts.get(kind) ?? 0) + added);
      puts.push([`n${SEP}${kind}`, counts.get(kind)!]);
    }

    const operations: { type: 'put'; key: string; value: Json }[] = puts.map(([key, value]) => ({ type: 'put', key, value }));
    const logged = puts.filter(([key]) => isReplicatedKey(key));
    const logSequence = this.#logSequence + 1;
    if (logged.length > 0) {
      operations.push(...this.#logOperations(logSequence, logged));
    }

    await this.#db.batch(operations, { sync: true });

    // Step 5: the batch is durable; publish the new state.
    if (logged.length > 0) {
      this.#logSequence = logSequence;
      this.onAppend(logSequence);
    }
    for (const [impId, window] of windows) {
      this.#windows.set(impId, window);
    }
    for (const [kind, count] of counts) {
      this.#objectCounts.set(kind, count);
    }
    jobs.forEach((job, index) => job.resolve({ duplicate: outcomes[index]! }));
    if (touched.size > 0) {
      this.onCommit(touched);
    }
  }

  /** Reads an object's record and its buckets that start at or after `sinceSeconds`. */
  async readObject(
    kind: ObjectKindName,
    key: string,
    sinceSeconds: number,
  ): Promise<{ record: ObjectRecord | undefined; buckets: BucketCounters[] }> {
    const id = objectId(kind, key);
    const record = (await this.#db.get(`o${SEP}${id}`)) as ObjectRecord | undefined;
    if (!record) {
      return { record: undefined, buckets: [] };
    }

    const prefix = `c${SEP}${id}${SEP}`;
    const buckets = new Map<number, number[]>();
    for await (const [slotKey, value] of this.#db.iterator({ gte: prefix + hex(sinceSeconds, 10), lt: prefix + END })) {
      const startSeconds = parseInt(slotKey.slice(prefix.length, prefix.length + 10), 16);
      const sum = buckets.get(startSeconds) ?? zeroVector();
      (value as number[]).forEach((count, index) => {
        sum[index]! += count;
      });
      buckets.set(startSeconds, sum);
    }

    return { record, buckets: [...buckets].map(([startSeconds, vector]) => ({ startSeconds, vector })) };
  }

  /**
   * Deletes counter buckets that start before `beforeSeconds`, in batches of `batchSize` keys, and
   * returns how many it deleted. Local observations that old are rejected; an old bucket that arrives by
   * replication meanwhile stays until the next purge. Deletions are local: each node purges by its own
   * clock and the replication log does not carry them.
   */
  async purgeBuckets(beforeSeconds: number, batchSize = 1000): Promise<number> {
    const cutoff = hex(beforeSeconds, 10);
    let deleted = 0;
    let pending: string[] = [];

    for await (const slotKey of this.#db.keys({ gte: `c${SEP}`, lt: `c${SEP}${END}` })) {
      // The bucket is the second-to-last field: c, kind, key, bucket, node.
      const end = slotKey.lastIndexOf(SEP);
      const bucket = slotKey.slice(slotKey.lastIndexOf(SEP, end - 1) + 1, end);
      if (bucket >= cutoff) {
        continue;
      }
      pending.push(slotKey);
      if (pending.length >= batchSize) {
        await this.#db.batch(pending.map((key) => ({ type: 'del' as const, key })));
        deleted += pending.length;
        pending = [];
      }
    }
    if (pending.length > 0) {
      await this.#db.batch(pending.map((key) => ({ type: 'del' as const, key })));
      deleted += pending.length;
    }
    return deleted;
  }

  async getPolicy(): Promise<StoredPolicy | undefined> {
    return (await this.#db.get(`p${SEP}current`)) as StoredPolicy | undefined;
  }

  /** Stores `policy` as the one in force and in the history, with its log entry, in one synchronous batch. */
  putPolicy(policy: StoredPolicy): Promise<void> {
    return this.#exclusive(async () => {
      const puts: [string, unknown][] = [
        [`p${SEP}current`, policy],
        [`p${SEP}v${SEP}${hex(policy.version, 8)}`, policy],
      ];
      const logSequence = this.#logSequence + 1;
      await this.#db.batch(
        [...puts.map(([key, value]) => ({ type: 'put' as const, key, value: value as Json })), ...this.#logOperations(logSequence, puts)],
        { sync: true },
      );
      this.#logSequence = logSequence;
      this.onAppend(logSequence);
    });
  }

  #logOperations(sequence: number, puts: [string, unknown][]): { type: 'put'; key: string; value: Json }[] {
    return [this.#logEntryOperation(sequence, puts), { type: 'put', key: `m${SEP}logseq`, value: sequence }];
  }

  #logEntryOperation(sequence: number, puts: [string, unknown][]): { type: 'put'; key: string; value: Json } {
    return { type: 'put', key: `l${SEP}${hex(sequence, 16)}`, value: { t: Date.now(), puts } };
  }

  /**
   * Returns up to `max` log entries after `afterSequence`, and the oldest sequence still kept (0 when
   * empty). Reading stops after the entry that brings the puts to `maxBytes` of JSON, so one entry is
   * returned even when it alone is larger.
   */
  async readLog(afterSequence: number, max: number, maxBytes = Infinity): Promise<{ entries: LogEntry[]; oldest: number }> {
    const entries: LogEntry[] = [];
    let bytes = 0;
    for await (const [key, value] of this.#db.iterator({ gt: `l${SEP}${hex(afterSequence, 16)}`, lt: `l${SEP}${END}`, limit: max })) {
      const entry = value as { t: number; puts: [string, unknown][] };
      if (maxBytes === Infinity) {
        entries.push({ sequence: parseInt(key.slice(2), 16), committedMs: entry.t, puts: entry.puts });
        continue;
      }
      const putsJson = JSON.stringify(entry.puts);
      entries.push({ sequence: parseInt(key.slice(2), 16), committedMs: entry.t, puts: entry.puts, putsJson });
      bytes += putsJson.length;
      if (bytes >= maxBytes) {
        break;
      }
    }
    return { entries, oldest: await this.oldestLogSequence() };
  }

  async oldestLogSequence(): Promise<number> {
    for await (const key of this.#db.keys({ gte: `l${SEP}`, lt: `l${SEP}${END}`, limit: 1 })) {
      return parseInt(key.slice(2), 16);
    }
    return 0;
  }

  /** Deletes log entries up to and including `throughSequence`; returns how many. */
  async trimLog(throughSequence: number): Promise<number> {
    const keys: string[] = [];
    for await (const key of this.#db.keys({ gte: `l${SEP}`, lte: `l${SEP}${hex(throughSequence, 16)}` })) {
      keys.push(key);
    }
    if (keys.length > 0) {
      await this.#db.batch(keys.map((key) => ({ type: 'del' as const, key })));
    }
    return keys.length;
  }

  /**
   * Returns up to `max` replicated pairs after `afterKey` in key order, for a snapshot page. The page
   * ends early after the pair that brings it to `maxBytes` of JSON, so it contains at least one pair.
   */
  async snapshotPage(afterKey: string, max: number, maxBytes = Infinity): Promise<{ pairs: [string, unknown][]; lastKey: string; done: boolean }> {
    const pairs: [string, unknown][] = [];
    let bytes = 0;

    // One range per replicated prefix, so the walk never steps through the log or other local keys.
    for (const prefix of REPLICATED_PREFIXES) {
      const start = prefix;
      const end = `${prefix}${END}`;
      if (afterKey >= end) {
        continue;
      }
      const range = afterKey >= start ? { gt: afterKey, lt: end } : { gte: start, lt: end };
      for await (const [key, value] of this.#db.iterator({ ...range, limit: max - pairs.length })) {
        pairs.push([key, value]);
        bytes += maxBytes === Infinity ? 0 : key.length + JSON.stringify(value).length;
        if (bytes >= maxBytes) {
          break;
        }
      }
      if (pairs.length >= max || bytes >= maxBytes) {
        return { pairs, lastKey: pairs[pairs.length - 1]![0], done: false };
      }
    }
    return { pairs, lastKey: pairs.length > 0 ? pairs[pairs.length - 1]![0] : afterKey, done: true };
  }

  /** Last sequence of `peerNodeId`'s log applied here, 0 when none. */
  async checkpoint(peerNodeId: string): Promise<number> {
    return Number((await this.#db.get(`r${SEP}${peerNodeId}`)) ?? 0);
  }

  /**
   * Merges a peer's puts into the index in one synchronous batch, together with the new checkpoint for
   * that peer when `checkpoint` is given. Applying the same puts again changes nothing.
   *
   * @returns the objects whose counters changed, whether the policy in force changed, and the feeds
   *   with a changed record
   */
  applyRemote(peerNodeId: string, puts: [string, unknown][], checkpoint?: number): Promise<RemoteApplyResult> {
    return this.#exclusive(async () => {
      const keys = [...new Set(puts.map(([key]) => key).filter(isReplicatedKey))];
      const localValues = new Map<string, unknown>();
      const current = await this.#db.getMany(keys);
      keys.forEach((key, index) => localValues.set(key, current[index]));

      const merged = new Map<string, unknown>();
      const touched = new Set<string>();
      const feedIds = new Set<string>();
      const newObjects = new Map<ObjectKindName, number>();
      const audits: Json[] = [];
      let policyChanged = false;

      for (const [key, remote] of puts) {
        if (!isReplicatedKey(key)) {
          continue;
        }
        const local = merged.has(key) ? merged.get(key) : localValues.get(key);
        const result = mergeValue(key, local, remote);
        if (result.conflict) {
          audits.push({ kind: conflictKind(key), key, kept: local as Json, discarded: remote as Json, peer: peerNodeId } as Json);
        }
        if (result.value === undefined) {
          continue;
        }
        merged.set(key, result.value);

        if (key[0] === 'o' && local === undefined) {
          const kind = key.slice(2, key.indexOf(SEP, 2)) as ObjectKindName;
          newObjects.set(kind, (newObjects.get(kind) ?? 0) + 1);
        }
        if (key[0] === 'c' || key[0] === 'o') {
          const end = key[0] === 'c' ? key.lastIndexOf(SEP, key.lastIndexOf(SEP) - 1) : key.length;
          touched.add(key.slice(2, end));
        }
        if (key === `p${SEP}current`) {
          policyChanged = true;
        }
        const feedId = feedIdOfIndexKey(key);
        if (feedId !== undefined) {
          feedIds.add(feedId);
        }
      }

      const operations: { type: 'put'; key: string; value: Json }[] = [...merged].map(([key, value]) => ({ type: 'put', key, value: value as Json }));
      const counts = new Map(this.#objectCounts);
      for (const [kind, added] of newObjects) {
        counts.set(kind, (counts.get(kind) ?? 0) + added);
        operations.push({ type: 'put', key: `n${SEP}${kind}`, value: counts.get(kind)! });
      }
      for (const audit of audits) {
        operations.push({ type: 'put', key: `a${SEP}${hex(Date.now(), 12)}${SEP}${hex(this.#auditCounter++, 8)}`, value: audit });
        this.#log.warn({ audit }, 'replication conflict: the later local value was kept');
      }
      if (checkpoint !== undefined) {
        operations.push({ type: 'put', key: `r${SEP}${peerNodeId}`, value: checkpoint });
      }
      if (operations.length > 0) {
        await this.#db.batch(operations, { sync: true });
      }

      for (const [kind, count] of counts) {
        this.#objectCounts.set(kind, count);
      }
      for (const [key, value] of merged) {
        if (key[0] === 's') {
          this.#windows.set(key.slice(2), new ReplayWindow(value as StoredReplayWindow));
        }
      }
      if (touched.size > 0) {
        this.onCommit(touched);
      }
      return { touched, policyChanged, feedIds };
    });
  }

  /** Audit entries, oldest first. */
  async auditEntries(): Promise<unknown[]> {
    const entries: unknown[] = [];
    for await (const value of this.#db.values({ gte: `a${SEP}`, lt: `a${SEP}${END}` })) {
      entries.push(value);
    }
    return entries;
  }

  /** Returns the newest `limit` audit entries with the time each was recorded, oldest first. */
  async recentAuditEntries(limit: number): Promise<{ atMs: number; entry: unknown }[]> {
    const entries: { atMs: number; entry: unknown }[] = [];
    for await (const [key, value] of this.#db.iterator({ gte: `a${SEP}`, lt: `a${SEP}${END}`, reverse: true, limit })) {
      entries.push({ atMs: parseInt(key.slice(2, key.indexOf(SEP, 2)), 16), entry: value });
    }
    return entries.reverse();
  }

  /** Returns the feed record at `key` (a key under the `f` prefix, see the layout above). */
  async getFeedRecord(key: string): Promise<unknown> {
    return this.#db.get(`f${SEP}${key}`);
  }

  /** Lists the feed records whose key starts with `prefix`, without the `f` prefix. */
  async listFeedRecords(prefix: string): Promise<[string, unknown][]> {
    const records: [string, unknown][] = [];
    for await (const [key, value] of this.#db.iterator({ gte: `f${SEP}${prefix}`, lt: `f${SEP}${prefix}${END}` })) {
      records.push([key.slice(2), value]);
    }
    return records;
  }

  /** Lists the keys of the feed records whose key starts with `prefix`, without the `f` prefix. */
  async listFeedKeys(prefix: string): Promise<string[]> {
    const keys: string[] = [];
    for await (const key of this.#db.keys({ gte: `f${SEP}${prefix}`, lt: `f${SEP}${prefix}${END}` })) {
      keys.push(key.slice(2));
    }
    return keys;
  }

  /**
   * Runs `plan` while no other write runs, then writes the operations it returns in one synchronous
   * batch. Each replicated record is merged into the stored value by the rule of store-merge.ts, so a
   * record that lost to a later value (for example one the peer sent meanwhile) is left out. The
   * records that changed are logged: each chunk (`b`) in an entry of its own, then every other record
   * in one last entry, so the peer applies a version only after its bytes. Local operations are
   * written as given and never logged.
   *
   * @returns the keys (without the `f` prefix) of the replicated records that were written
   */
  transactFeedRecords(plan: (reader: FeedRecordReader) => Promise<FeedTransaction>): Promise<Set<string>> {
    return this.#exclusive(async () => {
      const reader: FeedRecordReader = {
        get: (key) => this.#db.get(`f${SEP}${key}`),
        getMany: (keys) => this.#db.getMany(keys.map((key) => `f${SEP}${key}`)),
        keys: (prefix) => this.listFeedKeys(prefix),
      };
      const { replicated, local } = await plan(reader);

      const current = await reader.getMany(replicated.map(([key]) => key));
      const written: [string, unknown][] = [];
      replicated.forEach(([key, value], index) => {
        const merged = mergeValue(`f${SEP}${key}`, current[index], value);
        if (merged.value !== undefined) {
          written.push([`f${SEP}${key}`, merged.value]);
        }
      });

      const operations: ({ type: 'put'; key: string; value: Json } | { type: 'del'; key: string })[] = [];
      for (const operation of local) {
        operations.push(
          operation.type === 'put'
            ? { type: 'put', key: `f${SEP}${operation.key}`, value: operation.value as Json }
            : { type: 'del', key: `f${SEP}${operation.key}` },
        );
      }
      operations.push(...written.map(([key, value]) => ({ type: 'put' as const, key, value: value as Json })));

      const chunks = written.filter(([key]) => key.startsWith(`f${SEP}b${SEP}`));
      const others = written.filter(([key]) => !key.startsWith(`f${SEP}b${SEP}`));
      const entries = [...chunks.map((put) => [put]), ...(others.length > 0 ? [others] : [])];
      entries.forEach((puts, index) => operations.push(this.#logEntryOperation(this.#logSequence + 1 + index, puts)));
      if (entries.length > 0) {
        operations.push({ type: 'put', key: `m${SEP}logseq`, value: this.#logSequence + entries.length });
      }
      if (operations.length > 0) {
        await this.#db.batch(operations, { sync: true });
      }

      if (entries.length > 0) {
        this.#logSequence += entries.length;
        this.onAppend(this.#logSequence);
      }
      return new Set(written.map(([key]) => key.slice(2)));
    });
  }

  /** Waits for queued writes, then closes LevelDB. */
  async close(): Promise<void> {
    while (this.#writing) {
      await this.#writing;
    }
    await this.#writeLock;
    await this.#db.close();
  }

  #slotKey(kind: ObjectKindName, key: string, intervalStartMs: number): string {
    const bucketStart = Math.floor(intervalStartMs / 1000 / this.#bucketSeconds) * this.#bucketSeconds;
    return `c${SEP}${objectId(kind, key)}${SEP}${hex(bucketStart, 10)}${SEP}${this.#nodeId}`;
  }
}

/** Names the audit entry of a last-writer-wins conflict by the kind of record. */
function conflictKind(key: string): string {
  if (key.startsWith(`f${SEP}d${SEP}`)) {
    return 'feed-definition-conflict';
  }
  if (key.startsWith(`f${SEP}v${SEP}`)) {
    return 'feed-version-conflict';
  }
  return 'policy-conflict';
}

function zeroVector(): number[] {
  return new Array<number>(COUNTER_FIELDS.length).fill(0);
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}
