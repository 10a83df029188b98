/**
 * The feed mirror: feed definitions, refreshes on a timer or on request, atomic import into LevelDB,
 * per-feed status, and the listings and DNS zones the imported versions produce.
 *
 * A new version replaces the version in force only when it was fetched and parsed completely: its
 * bytes, its metadata and its refresh record are one LevelDB batch. Until then lookups and the DNS
 * front keep using the previous version.
 *
 * In a pair, definitions, versions and refresh records replicate (see feed-records.ts). The preferred
 * node of each feed fetches when the feed is due, and the other node loads the version it receives by
 * replication. The other node fetches itself only when no refresh was recorded within a grace period
 * (see refresh-schedule.ts). Every change of a feed's records, local or replicated, goes through
 * `#reconcile`, which deletes the local copies that are no longer needed and brings the loaded
 * dataset, the status and the timer in line with the stored records.
 */

import { createHash } from 'node:crypto';

import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { ObjectKindName } from '../../../modules/protocol/constants.js';
import { compareHlc, type HlcTimestamp, type HybridLogicalClock } from '../hlc.js';
import type { FeedRecordOperation, FeedRecordReader, IndexStore } from '../store.js';
import type { Dataset } from './dataset.js';
import { checkFeedDefinition, type FeedDefinition } from './definition.js';
import { planCleanup, type ChunkInfo, type FeedRecords } from './feed-cleanup.js';
import {
  CHUNK_BYTES,
  chunkKey,
  chunkPrefix,
  chunkRecords,
  chunkSha,
  definitionKey,
  refreshKey,
  statusKey,
  versionKey,
  type FeedVersion,
  type LocalStatus,
  type RefreshRecord,
  type StoredChunk,
  type StoredDefinition,
} from './feed-records.js';
import { convertLegacyFeeds } from './legacy-records.js';
import { matchKey } from './match-key.js';
import { parseFeed, type LineError } from './parse.js';
import { fallbackGraceMs, nextRefreshMs, preferredNode, type FallbackGrace } from './refresh-schedule.js';
import { fetchSource } from './source.js';

export type { FeedVersion } from './feed-records.js';

/** Outcome of the refreshes so far, as recorded on this node. Times are Unix ms, 0 for never. */
export interface FeedStatus {
  /** Start of this node's last fetch. */
  lastAttemptMs: number;
  /** Start of the last successful refresh on either node of the pair. */
  lastSuccessMs: number;
  /** Node that made that refresh, or empty when none succeeded. */
  lastSuccessNodeId: string;
  /** That refresh found the source unchanged (304, or the same bytes). */
  lastSuccessUnchanged: boolean;
  /** This node's last failed refresh, while no refresh on either node has succeeded since. */
  lastError: { code: string; message: string; atMs: number } | undefined;
}

/** One feed as `cdrctl feeds list` shows it. */
export interface FeedView {
  definition: FeedDefinition;
  version: FeedVersion | undefined;
  status: FeedStatus;
  /** Node that fetches when the feed is due. */
  preferredNodeId: string;
  /** When this node refreshes unless a refresh is recorded first, Unix ms, or 0 for manual feeds. */
  nextRefreshMs: number;
  /** Time past the due time that this node waits for the preferred node, in ms, or 0 on the preferred node. */
  refreshGraceMs: number;
}

/** A listing of an object by a feed, as lookups return it. */
export interface FeedListing {
  source: string;
  category: string;
  listed: boolean;
  returnCode: string;
  reason: string;
  fetchedMs: number;
  expiresMs: number;
}

interface LoadedFeed {
  definition: FeedDefinition;
  definitionHlc: HlcTimestamp;
  /** The version whose dataset is loaded, or for DMARC feeds, which have no dataset, the version in force. */
  version: FeedVersion | undefined;
  dataset: Dataset | undefined;
  refresh: RefreshRecord | undefined;
  local: LocalStatus;
  timer: NodeJS.Timeout | undefined;
  refreshing: Promise<FeedView> | undefined;
  log: Logger;
}

/** The stored records of one feed after the cleanup, with this node's status. */
interface ReconciledRecords {
  definition: StoredDefinition | undefined;
  version: FeedVersion | undefined;
  refresh: RefreshRecord | undefined;
  local: LocalStatus | undefined;
}

export interface FeedManagerOptions {
  store: IndexStore;
  log: Logger;
  /** Id of this node. */
  nodeId: string;
  /** The clock that orders definitions, versions and refresh records. */
  clock: HybridLogicalClock;
  /** Id of the paired node, or undefined when this node is not paired. */
  peerNodeId: () => string | undefined;
  /** How long the node that is not preferred waits before it fetches. */
  grace: FallbackGrace;
  /** Called after a new version is in force or a feed was removed, so caches and zones follow. */
  onChange: () => void;
  /** Imports a DMARC report; absent when DMARC import is not wired. */
  importDmarc?: (bytes: Buffer, feed: FeedDefinition) => Promise<{ entries: number; lineErrors: LineError[] }>;
  now?: () => number;
}

const SEP = '\u0000';

export class FeedManager {
  readonly #store: IndexStore;
  readonly #log: Logger;
  readonly #nodeId: string;
  readonly #clock: HybridLogicalClock;
  readonly #peerNodeId: () => string | undefined;
  readonly #grace: FallbackGrace;
  readonly #onChange: () => void;
  readonly #importDmarc: FeedManagerOptions['importDmarc'];
  readonly #now: () => number;
  readonly #feeds = new Map<string, LoadedFeed>();
  /** Serialises reconciliations, so that two never interleave their reads and memory updates. */
  #reconciling: Promise<unknown> = Promise.resolve();
  #opening = true;
  #closed = false;

  private constructor(options: FeedManagerOptions) {
    this.#store = options.store;
    this.#log = options.log.child({ component: 'feeds' });
    this.#nodeId = options.nodeId;
    this.#clock = options.clock;
    this.#peerNodeId = options.peerNodeId;
    this.#grace = options.grace;
    this.#onChange = options.onChange;
    this.#importDmarc = options.importDmarc;
    this.#now = options.now ?? Date.now;
  }

  /**
   * Converts records stored before feeds replicated, then loads every stored feed and its version in
   * force (parsing the stored bytes), and starts the timers.
   */
  static async open(options: FeedManagerOptions): Promise<FeedManager> {
    const manager = new FeedManager(options);
    await convertLegacyFeeds(options.store, options.clock, manager.#log);
    for (const key of await options.store.listFeedKeys(`d${SEP}`)) {
      await manager.#reconcile(key.slice(2));
    }
    manager.#opening = false;
    manager.#log.info({ feeds: manager.#feeds.size }, 'feeds loaded');
    return manager;
  }

  /** Id of this node. */
  get nodeId(): string {
    return this.#nodeId;
  }

  list(): FeedView[] {
    return [...this.#feeds.values()].sort((a, b) => a.definition.id.localeCompare(b.definition.id)).map((feed) => this.#view(feed));
  }

  /** @throws CdrError `ERR_FEED_NOT_FOUND` */
  get(id: string): FeedView {
    return this.#view(this.#feed(id));
  }

  #feed(id: string): LoadedFeed {
    const feed = this.#feeds.get(id);
    if (!feed) {
      throw new CdrError('ERR_FEED_NOT_FOUND', `no feed with id "${id}"; cdrctl feeds list shows the feeds`, { details: { id } });
    }
    return feed;
  }

  /**
   * Stores a new feed and runs its first refresh on this node; returns the feed after that refresh,
   * whose status records whether it succeeded. The definition replicates to the peer.
   *
   * @throws CdrError `ERR_FEED_INVALID`, `ERR_FEED_EXISTS` (same id, or same DNS zone as another feed)
   */
  async add(input: Partial<FeedDefinition>): Promise<FeedView> {
    const definition = checkFeedDefinition(input);
    if (this.#feeds.has(definition.id)) {
      throw exists(definition.id);
    }
    // NOTE: only this node's feeds are checked. A feed with the same zone that the peer adds before
    // the definitions meet is served alongside this one.
    const sameZone = definition.zone === '' ? undefined : [...this.#feeds.values()].find((feed) => feed.definition.zone === definition.zone);
    if (sameZone) {
      throw new CdrError('ERR_FEED_EXISTS', `feed "${sameZone.definition.id}" already serves zone ${definition.zone}; choose another zone`, {
        details: { id: definition.id, zone: definition.zone },
      });
    }

    const stored: StoredDefinition = { ...definition, hlc: this.#clock.tick() };
    await this.#store.transactFeedRecords(async (reader) => {
      // The peer's definition of the same id may have arrived since the check above.
      const current = (await reader.get(definitionKey(definition.id))) as StoredDefinition | undefined;
      if (current && !current.removed) {
        throw exists(definition.id);
      }
      return { replicated: [[definitionKey(definition.id), stored]], local: [] };
    });
    await this.#reconcile(definition.id);
    const feed = this.#feed(definition.id);
    feed.log.info({ source: definition.source, format: definition.format, zone: definition.zone, category: definition.category }, 'feed added');
    return this.refresh(definition.id);
  }

  /**
   * Removes a feed: stores a tombstone that replicates, and deletes the feed's stored versions on this
   * node. Its listings and zone disappear.
   *
   * @throws CdrError `ERR_FEED_NOT_FOUND`
   */
  async remove(id: string): Promise<void> {
    const feed = this.#feed(id);
    clearTimeout(feed.timer);
    await feed.refreshing?.catch(() => undefined);
    const tombstone: StoredDefinition = { id, removed: true, hlc: this.#clock.tick() };
    await this.#store.transactFeedRecords(async () => ({
      replicated: [[definitionKey(id), tombstone]],
      local: [{ type: 'del', key: statusKey(id) }],
    }));
    await this.#reconcile(id);
  }

  /**
   * Refreshes one feed on this node now and returns it afterwards, whichever node is preferred. A
   * refresh already running is joined, not repeated. A failure is recorded in the status and logged,
   * and the version in force stays.
   *
   * @throws CdrError `ERR_FEED_NOT_FOUND`
   */
  refresh(id: string): Promise<FeedView> {
    const feed = this.#feed(id);
    feed.refreshing ??= this.#refresh(feed).finally(() => {
      feed.refreshing = undefined;
    });
    return feed.refreshing;
  }

  async refreshAll(): Promise<FeedView[]> {
    return Promise.all([...this.#feeds.keys()].map((id) => this.refresh(id)));
  }

  /** Loads what replication changed: the feeds whose records the peer's entries touched. */
  async applyReplicated(feedIds: Iterable<string>): Promise<void> {
    for (const id of feedIds) {
      // #reconcile logs a failure, and the next change of the feed's records tries again.
      await this.#reconcile(id).catch(() => undefined);
    }
  }

  /** Plans every timer again, after the peer changed and with it the preferred node of each feed. */
  rescheduleAll(): void {
    for (const feed of this.#feeds.values()) {
      this.#schedule(feed);
    }
  }

  async #refresh(feed: LoadedFeed): Promise<FeedView> {
    const { definition, definitionHlc } = feed;
    const id = definition.id;
    const started = this.#now();
    feed.local = { ...feed.local, lastAttemptMs: started };

    let parsed: { sha256: string; dataset: Dataset | undefined } | undefined;
    try {
      // The validators are those of the loaded version. So when the version in force could not be
      // loaded because its bytes are missing, the fetch downloads the bytes again.
      const fetched = await fetchSource({
        source: definition.source,
        maxBytes: definition.maxBytes,
        timeoutMs: definition.timeoutMs,
        caPem: definition.caPem,
        ...(feed.version?.etag ? { etag: feed.version.etag } : {}),
        ...(feed.version?.lastModified ? { lastModified: feed.version.lastModified } : {}),
      });
      const sha256 = fetched.changed ? createHash('sha256').update(fetched.bytes).digest('hex') : (feed.version?.sha256 ?? '');
      const local: LocalStatus = { lastAttemptMs: started, lastError: undefined };

      if (!fetched.changed || (feed.version && sha256 === feed.version.sha256)) {
        const refresh: RefreshRecord = { atMs: started, changed: false, sha256, hlc: this.#clock.tick(), definitionHlc };
        await this.#commit(feed, [[refreshKey(id), refresh]], local);
        feed.log.info({ ms: this.#now() - started }, 'feed unchanged');
      } else {
        let dataset: Dataset | undefined;
        let summary: { entries: number; exclusions: number; badLines: number; lineErrors: LineError[]; encoding: string };
        if (definition.format === 'dmarc') {
          if (!this.#importDmarc) {
            throw new CdrError('ERR_FEED_INVALID', 'DMARC feeds are not available in this build');
          }
          const imported = await this.#importDmarc(fetched.bytes, definition);
          summary = { entries: imported.entries, exclusions: 0, badLines: imported.lineErrors.length, lineErrors: imported.lineErrors, encoding: 'utf-8' };
        } else {
          const result = parseFeed(fetched.bytes, definition.format, definition.source);
          dataset = result.dataset;
          summary = { entries: dataset.entries, exclusions: dataset.exclusions, badLines: result.badLines, lineErrors: result.lineErrors, encoding: result.encoding };
        }

        const hlc = this.#clock.tick();
        const version: FeedVersion = {
          version: (feed.version?.version ?? 0) + 1,
          importedMs: this.#now(),
          bytes: fetched.bytes.length,
          chunks: Math.ceil(fetched.bytes.length / CHUNK_BYTES),
          sha256,
          ...(fetched.etag ? { etag: fetched.etag } : {}),
          ...(fetched.lastModified ? { lastModified: fetched.lastModified } : {}),
          ...summary,
          hlc,
          definitionHlc,
        };
        const refresh: RefreshRecord = { atMs: started, changed: true, sha256, hlc, definitionHlc };
        parsed = { sha256, dataset };
        await this.#commit(feed, [...chunkRecords(id, sha256, fetched.bytes, hlc), [versionKey(id), version], [refreshKey(id), refresh]], local);
        feed.log.info(
          { version: version.version, sha256, entries: version.entries, exclusions: version.exclusions, badLines: version.badLines, bytes: version.bytes, ms: this.#now() - started },
          'feed imported',
        );
        for (const lineError of version.lineErrors) {
          feed.log.warn({ source: definition.source, line: lineError.line, reason: lineError.reason }, 'feed line skipped');
        }
      }
    } catch (error) {
      const code = error instanceof CdrError ? error.code : 'ERR_FEED_FETCH';
      const local: LocalStatus = { lastAttemptMs: started, lastError: { code, message: (error as Error).message, atMs: started } };
      feed.local = local;
      await this.#commit(feed, [], local).catch((writeError: unknown) => {
        feed.log.error({ err: writeError }, 'storing the feed status failed');
      });
      feed.log.warn({ code, err: error, versionInForce: feed.version?.version ?? 0 }, 'feed refresh failed; the version in force stays');
    }

    await this.#reconcile(id, parsed);
    return this.#view(this.#feeds.get(id) ?? feed);
  }

  /**
   * Writes the records of a refresh of `feed` and this node's status in one batch. Nothing is written
   * when the definition they were made for was removed or replaced meanwhile, and only the status
   * when a later version, which the peer imported meanwhile, is in force.
   */
  async #commit(feed: LoadedFeed, replicated: [string, unknown][], local: LocalStatus): Promise<void> {
    const id = feed.definition.id;
    await this.#store.transactFeedRecords(async (reader) => {
      const current = (await reader.get(definitionKey(id))) as StoredDefinition | undefined;
      if (!current || current.removed || compareHlc(current.hlc, feed.definitionHlc) !== 0) {
        feed.log.info('the feed was removed or replaced during the refresh, so its result is not stored');
        return { replicated: [], local: [] };
      }

      const status: FeedRecordOperation[] = [{ type: 'put', key: statusKey(id), value: local }];
      const imported = replicated.find(([key]) => key === versionKey(id))?.[1] as FeedVersion | undefined;
      const inForce = (await reader.get(versionKey(id))) as FeedVersion | undefined;
      if (imported && inForce && compareHlc(inForce.hlc, imported.hlc) > 0) {
        feed.log.info({ versionInForce: inForce.version, by: inForce.hlc.nodeId }, 'a later version from the peer is in force, so this import is not stored');
        return { replicated: [], local: status };
      }
      return { replicated, local: status };
    });
  }

  /**
   * Queues a reconciliation of feed `id` behind the running ones. `parsed` is the dataset this node
   * just parsed, so that a version it imported itself is not parsed a second time.
   */
  #reconcile(id: string, parsed?: { sha256: string; dataset: Dataset | undefined }): Promise<void> {
    const run = this.#reconciling.then(() => this.#reconcileNow(id, parsed));
    this.#reconciling = run.catch((error: unknown) => {
      this.#log.error({ err: error, feed: id }, 'loading the stored feed records failed');
    });
    return run;
  }

  async #reconcileNow(id: string, parsed: { sha256: string; dataset: Dataset | undefined } | undefined): Promise<void> {
    // Step 1: delete the local copies no longer needed, and read what stays, under the index write lock.
    let records: ReconciledRecords = { definition: undefined, version: undefined, refresh: undefined, local: undefined };
    await this.#store.transactFeedRecords(async (reader) => {
      const stored = await readFeedRecords(reader, id);
      const plan = planCleanup(stored.records);
      const deletions: FeedRecordOperation[] = plan.chunks.map((key) => ({ type: 'del', key }));
      if (plan.version) {
        deletions.push({ type: 'del', key: versionKey(id) });
      }
      if (plan.refresh) {
        deletions.push({ type: 'del', key: refreshKey(id) });
      }
      records = {
        definition: stored.records.definition,
        version: plan.version ? undefined : stored.records.version,
        refresh: plan.refresh ? undefined : stored.records.refresh,
        local: stored.local,
      };
      return { replicated: [], local: deletions };
    });

    // This node's own records count too: after a restart with a clock that went back, new records
    // must still be later than the stored ones.
    for (const stamp of [records.definition?.hlc, records.version?.hlc, records.refresh?.hlc]) {
      if (stamp) {
        this.#clock.observe(stamp);
      }
    }

    // Step 2: a feed without a live definition leaves memory.
    const { definition } = records;
    const loaded = this.#feeds.get(id);
    if (!definition || definition.removed) {
      if (loaded) {
        clearTimeout(loaded.timer);
        this.#feeds.delete(id);
        loaded.log.info({ by: definition?.hlc.nodeId }, 'feed removed');
        this.#onChange();
      }
      return;
    }

    // Step 3: take over a new or replaced definition.
    const definitionHlc = definition.hlc;
    let feed = loaded;
    let changed = false;
    if (!feed || compareHlc(feed.definitionHlc, definitionHlc) !== 0) {
      const replaced = feed !== undefined;
      clearTimeout(feed?.timer);
      feed = {
        definition: definitionFields(definition),
        definitionHlc,
        version: undefined,
        dataset: undefined,
        refresh: undefined,
        local: { lastAttemptMs: 0, lastError: undefined },
        timer: undefined,
        refreshing: undefined,
        log: this.#log.child({ feed: id }),
      };
      this.#feeds.set(id, feed);
      changed = replaced;
      if (!this.#opening && definitionHlc.nodeId !== this.#nodeId) {
        feed.log.info({ by: definitionHlc.nodeId, source: definition.source, format: definition.format }, 'feed definition received from the peer');
      }
    }

    // Step 4: load the version in force when it belongs to this definition and differs from the loaded one.
    const version = records.version && compareHlc(records.version.definitionHlc, definitionHlc) === 0 ? records.version : undefined;
    if (version && version.sha256 !== feed.version?.sha256) {
      changed = (await this.#loadVersion(feed, version, parsed)) || changed;
    } else if (version) {
      // The same bytes, fetched again or by the other node, so only the metadata changes.
      feed.version = version;
    }
    feed.refresh = records.refresh && compareHlc(records.refresh.definitionHlc, definitionHlc) === 0 ? records.refresh : undefined;
    feed.local = { lastAttemptMs: records.local?.lastAttemptMs ?? 0, lastError: records.local?.lastError };

    if (changed) {
      this.#onChange();
    }
    this.#schedule(feed);
  }

  /** Makes `version` the loaded one and returns true, or keeps the previous one and returns false when the bytes of `version` are not all stored yet. */
  async #loadVersion(feed: LoadedFeed, version: FeedVersion, parsed: { sha256: string; dataset: Dataset | undefined } | undefined): Promise<boolean> {
    const { definition } = feed;
    let dataset: Dataset | undefined;
    if (parsed?.sha256 === version.sha256) {
      dataset = parsed.dataset;
    } else if (definition.format !== 'dmarc') {
      // A DMARC report is counted on the node that imported it, and those counters replicate, so the
      // report is not imported here.
      try {
        const bytes = await this.#readVersionBytes(definition.id, version);
        dataset = parseFeed(bytes, definition.format, definition.source).dataset;
      } catch (error) {
        const missing = error instanceof CdrError && error.code === 'ERR_FEED_TRUNCATED';
        const fields = { err: error, version: version.version, sha256: version.sha256, versionLoaded: feed.version?.version ?? 0 };
        if (missing) {
          feed.log.info(fields, 'the bytes of the feed version in force have not all arrived; the loaded version stays until they do');
        } else {
          feed.log.error(fields, 'stored feed version cannot be loaded; the loaded version stays until the next refresh');
        }
        return false;
      }
    }

    feed.version = version;
    feed.dataset = dataset;
    if (!this.#opening && version.hlc.nodeId !== this.#nodeId) {
      feed.log.info({ version: version.version, sha256: version.sha256, entries: version.entries, by: version.hlc.nodeId }, 'feed version received from the peer is in force');
    }
    return true;
  }

  async #readVersionBytes(id: string, version: FeedVersion): Promise<Buffer> {
    const keys = Array.from({ length: version.chunks }, (_, index) => chunkKey(id, version.sha256, index));
    const chunks: Buffer[] = [];
    for (const [index, key] of keys.entries()) {
      const chunk = (await this.#store.getFeedRecord(key)) as StoredChunk | undefined;
      if (chunk === undefined) {
        throw new CdrError('ERR_FEED_TRUNCATED', `feed ${id} version ${version.version} is missing stored chunk ${index} of ${version.chunks}`, {
          details: { id, sha256: version.sha256, chunk: index },
        });
      }
      chunks.push(Buffer.from(chunk.data, 'base64'));
    }
    const bytes = Buffer.concat(chunks);
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    if (sha256 !== version.sha256) {
      throw new CdrError('ERR_FEED_TRUNCATED', `feed ${id} version ${version.version}: the stored bytes hash to ${sha256}, not ${version.sha256}`, {
        details: { id, sha256: version.sha256 },
      });
    }
    return bytes;
  }

  #nextRefreshMs(feed: LoadedFeed): number | undefined {
    return nextRefreshMs({
      refreshSeconds: feed.definition.refreshSeconds,
      addedMs: feed.definitionHlc.wallMs,
      lastSuccessMs: feed.refresh?.atMs ?? 0,
      lastAttemptMs: feed.local.lastAttemptMs,
      preferred: this.#isPreferred(feed),
      graceMs: fallbackGraceMs(feed.definition, this.#grace),
    });
  }

  #isPreferred(feed: LoadedFeed): boolean {
    return preferredNode(feed.definition.id, this.#nodeId, this.#peerNodeId()) === this.#nodeId;
  }

  #schedule(feed: LoadedFeed): void {
    clearTimeout(feed.timer);
    feed.timer = undefined;
    const dueMs = this.#nextRefreshMs(feed);
    if (this.#closed || dueMs === undefined) {
      return;
    }
    feed.timer = setTimeout(() => this.#onTimer(feed), Math.min(Math.max(0, dueMs - this.#now()), 2_147_483_647));
    feed.timer.unref();
  }

  /** Refreshes `feed` when it is still due, because a refresh recorded since the timer was set moves the due time. */
  #onTimer(feed: LoadedFeed): void {
    if (this.#closed || this.#feeds.get(feed.definition.id) !== feed) {
      return;
    }
    const dueMs = this.#nextRefreshMs(feed);
    if (dueMs === undefined) {
      return;
    }
    if (this.#now() < dueMs) {
      this.#schedule(feed);
      return;
    }
    if (!this.#isPreferred(feed)) {
      feed.log.info(
        { preferredNode: preferredNode(feed.definition.id, this.#nodeId, this.#peerNodeId()), lastSuccessMs: feed.refresh?.atMs ?? 0, graceMs: fallbackGraceMs(feed.definition, this.#grace) },
        'no refresh recorded within the grace period after the feed was due; fetching on this node',
      );
    }
    this.refresh(feed.definition.id).finally(() => {
      if (this.#feeds.get(feed.definition.id) === feed) {
        this.#schedule(feed);
      }
    });
  }

  /** Stops the timers and waits for refreshes and reconciliations in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const feed of this.#feeds.values()) {
      clearTimeout(feed.timer);
    }
    await Promise.all([...this.#feeds.values()].map((feed) => feed.refreshing?.catch(() => undefined)));
    await this.#reconciling;
  }

  /** Feeds with a zone and a dataset in force, for the DNS front. */
  zoneFeeds(): { definition: FeedDefinition; dataset: Dataset }[] {
    return [...this.#feeds.values()]
      .filter((feed) => feed.definition.zone !== '' && feed.dataset)
      .map((feed) => ({ definition: feed.definition, dataset: feed.dataset! }));
  }

  /** Datasets in force, for exports. */
  datasets(): { definition: FeedDefinition; dataset: Dataset; version: FeedVersion }[] {
    return [...this.#feeds.values()].filter((feed) => feed.dataset && feed.version).map((feed) => ({ definition: feed.definition, dataset: feed.dataset!, version: feed.version! }));
  }

  /**
   * Returns the listings of a normalised key in every feed. An `ip` matches its address; a `network`
   * matches entries at most as long as its prefix; a `domain` matches dnset and domain lists; a `user`
   * matches on its domain part.
   */
  listings(kind: ObjectKindName, key: string): FeedListing[] {
    const listings: FeedListing[] = [];
    for (const feed of this.#feeds.values()) {
      if (!feed.dataset || !feed.version) {
        continue;
      }
      // A combined feed lists under FEED:SECTION, one listing per section that lists the key.
      const members = feed.dataset.format === 'combined' ? feed.dataset.parts.map((part) => ({ source: `${feed.definition.id}:${part.name}`, dataset: part.dataset })) : [{ source: feed.definition.id, dataset: feed.dataset }];
      for (const { source, dataset } of members) {
        const match = matchKey(dataset, kind, key);
        if (!match?.match.listed) {
          continue;
        }
        const value = match.match.value;
        // As on the DNS front, `$` in a domain entry's TXT is the listed name, not the key asked for.
        const subject = kind === 'domain' || kind === 'user' ? match.match.entry.replace(/^\*\./, '') : match.subject;
        const refreshMs = feed.definition.refreshSeconds * 1000;
        listings.push({
          source,
          category: feed.definition.category,
          listed: true,
          returnCode: value.a,
          reason: value.txt === undefined ? `listed by ${match.match.entry}` : dataset.expandTxt(value.txt, subject),
          fetchedMs: feed.version.importedMs,
          expiresMs: refreshMs > 0 ? Math.max(feed.refresh?.atMs ?? 0, feed.version.importedMs) + refreshMs : 0,
        });
      }
    }
    return listings;
  }

  #view(feed: LoadedFeed): FeedView {
    const refresh = feed.refresh;
    const lastSuccessMs = refresh?.atMs ?? 0;
    const lastError = feed.local.lastError && feed.local.lastError.atMs > lastSuccessMs ? feed.local.lastError : undefined;
    return {
      definition: feed.definition,
      version: feed.version,
      status: {
        lastAttemptMs: feed.local.lastAttemptMs,
        lastSuccessMs,
        lastSuccessNodeId: refresh?.hlc.nodeId ?? '',
        lastSuccessUnchanged: refresh ? !refresh.changed : false,
        lastError,
      },
      preferredNodeId: preferredNode(feed.definition.id, this.#nodeId, this.#peerNodeId()),
      nextRefreshMs: this.#nextRefreshMs(feed) ?? 0,
      refreshGraceMs: this.#isPreferred(feed) ? 0 : fallbackGraceMs(feed.definition, this.#grace),
    };
  }
}

/** Reads the records of feed `id` that the cleanup decides on, and this node's status. */
async function readFeedRecords(reader: FeedRecordReader, id: string): Promise<{ records: FeedRecords; local: LocalStatus | undefined }> {
  const [definition, version, refresh, local] = (await reader.getMany([definitionKey(id), versionKey(id), refreshKey(id), statusKey(id)])) as [
    StoredDefinition | undefined,
    FeedVersion | undefined,
    RefreshRecord | undefined,
    LocalStatus | undefined,
  ];

  // Chunks of the version in force are kept whatever their timestamp, so only the others are read.
  const keys = (await reader.keys(chunkPrefix(id))).filter((key) => definition?.removed || chunkSha(key, id) !== version?.sha256);
  const values = (await reader.getMany(keys)) as (StoredChunk | undefined)[];
  const chunks: ChunkInfo[] = [];
  keys.forEach((key, index) => {
    const value = values[index];
    if (value) {
      chunks.push({ key, sha256: chunkSha(key, id), hlc: value.hlc });
    }
  });
  return { records: { definition, version, refresh, chunks }, local };
}

/** Returns the administrator's fields of a stored definition, without its timestamp. */
function definitionFields(stored: FeedDefinition): FeedDefinition {
  const { id, source, format, zone, category, refreshSeconds, maxBytes, timeoutMs } = stored;
  return { id, source, format, zone, category, refreshSeconds, maxBytes, timeoutMs, caPem: stored.caPem ?? '' };
}

function exists(id: string): CdrError {
  return new CdrError('ERR_FEED_EXISTS', `a feed with id "${id}" exists; remove it first or choose another id`, { details: { id } });
}
