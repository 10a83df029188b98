/**
 * The LevelDB index. This process is the only one that opens it.
 *
 * Key layout (UTF-8 strings, fields separated by NUL, which no normalised key contains):
 *
 *     o NUL kind NUL key                          -> { firstSeenMs, lastSeenMs }
 *     c NUL kind NUL key NUL bucket NUL nodeId    -> counter vector (COUNTER_FIELDS order), absolute values
 *     s NUL impId                                 -> replay window of that IMP's applied Observe sequences
 *     n NUL kind                                  -> number of objects of that kind
 *     l NUL logSequence                           -> replication log entry: the puts of one write
 *     m NUL logSequence                           -> last replication log sequence written
 *     p NUL current                               -> policy in force { version, yaml, appliedMs }
 *     p NUL v NUL version                         -> every policy applied, by version
 *     f NUL d NUL feedId                          -> feed definition
 *     f NUL v NUL feedId                          -> feed version in force: metadata of the last good import
 *     f NUL b NUL feedId NUL version NUL chunk    -> that version's raw bytes, base64, in chunks
 *     f NUL s NUL feedId                          -> feed status: last attempt, success and error
 *
 * `bucket` is the bucket's start in Unix seconds as 10 hex digits and `logSequence` 16 hex digits, so
 * that byte order is time order. Counter slots belong to one node each and only grow, so replicas can
 * merge them by maximum.
 */

import { ClassicLevel } from 'classic-level';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { OBJECT_KINDS, type ObjectKindName } from '../../modules/protocol/constants.js';
import { COUNTER_FIELDS } from '../../modules/protocol/counters.js';
import type { BucketCounters } from './reputation.js';
import { ReplayWindow, type StoredReplayWindow } from './replay-window.js';

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

type Json = number | string | number[] | ObjectRecord | StoredPolicy | StoredReplayWindow | { puts: [string, unknown][] };

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
        await this.#commit(jobs);
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
    const logSequence = this.#logSequence + 1;
    if (puts.length > 0) {
      // TODO: trim log entries that every peer has acknowledged; until pairing exists the log only grows.
      operations.push({ type: 'put', key: `l${SEP}${hex(logSequence, 16)}`, value: { puts: puts.filter(([key]) => !key.startsWith(`n${SEP}`)) } });
      operations.push({ type: 'put', key: `m${SEP}logseq`, value: logSequence });
    }

    await this.#db.batch(operations, { sync: true });

    // Step 5: the batch is durable; publish the new state.
    if (puts.length > 0) {
      this.#logSequence = logSequence;
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
   * returns how many it deleted. Observations that old are rejected, so no write races with this.
   * Deletions are local: each node purges by its own clock and the replication log does not carry them.
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

  /** Stores `policy` as the one in force and in the history, in one synchronous batch. */
  async putPolicy(policy: StoredPolicy): Promise<void> {
    await this.#db.batch(
      [
        { type: 'put', key: `p${SEP}current`, value: policy },
        { type: 'put', key: `p${SEP}v${SEP}${hex(policy.version, 8)}`, value: policy },
      ],
      { sync: true },
    );
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

  /** Writes feed records (keys without the `f` prefix) in one synchronous batch: all or nothing. */
  async writeFeedRecords(operations: ({ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string })[]): Promise<void> {
    await this.#db.batch(
      operations.map((operation) =>
        operation.type === 'put'
          ? { type: 'put' as const, key: `f${SEP}${operation.key}`, value: operation.value as Json }
          : { type: 'del' as const, key: `f${SEP}${operation.key}` },
      ),
      { sync: true },
    );
  }

  /** Waits for queued writes, then closes LevelDB. */
  async close(): Promise<void> {
    while (this.#writing) {
      await this.#writing;
    }
    await this.#db.close();
  }

  #slotKey(kind: ObjectKindName, key: string, intervalStartMs: number): string {
    const bucketStart = Math.floor(intervalStartMs / 1000 / this.#bucketSeconds) * this.#bucketSeconds;
    return `c${SEP}${objectId(kind, key)}${SEP}${hex(bucketStart, 10)}${SEP}${this.#nodeId}`;
  }
}

function zeroVector(): number[] {
  return new Array<number>(COUNTER_FIELDS.length).fill(0);
}

function hex(value: number, width: number): string {
  return value.toString(16).padStart(width, '0');
}
