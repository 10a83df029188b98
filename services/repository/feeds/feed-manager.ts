/**
 * The feed mirror: feed definitions, refreshes on a timer or on request, atomic import into LevelDB,
 * per-feed status, and the listings and DNS zones the imported versions produce.
 *
 * A new version replaces the version in force only when it was fetched and parsed completely: its
 * bytes, its metadata and the removal of the previous version's bytes are one LevelDB batch. Until
 * then lookups and the DNS front keep using the previous version.
 */

import { createHash } from 'node:crypto';

import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import type { ObjectKindName } from '../../../modules/protocol/constants.js';
import type { IndexStore } from '../store.js';
import type { Dataset, MatchResult } from './dataset.js';
import { checkFeedDefinition, type FeedDefinition } from './definition.js';
import { parseIp4, parseIp4Cidr, parseIp6Entry, ip6ToBigInt } from './ip.js';
import { parseFeed, type LineError } from './parse.js';
import { fetchSource } from './source.js';
import ipaddr from 'ipaddr.js';

/** Size of one stored chunk of a version's raw bytes. */
const CHUNK_BYTES = 512 * 1024;

/** Metadata of the version in force. */
export interface FeedVersion {
  version: number;
  importedMs: number;
  bytes: number;
  chunks: number;
  sha256: string;
  etag?: string;
  lastModified?: string;
  entries: number;
  exclusions: number;
  badLines: number;
  lineErrors: LineError[];
  encoding: string;
}

/** Outcome of the refreshes so far. */
export interface FeedStatus {
  lastAttemptMs: number;
  lastSuccessMs: number;
  /** Last refresh that found the source unchanged (304, or the same bytes). */
  lastUnchangedMs: number;
  lastError: { code: string; message: string; atMs: number } | undefined;
}

/** One feed as `cdrctl feeds list` shows it. */
export interface FeedView {
  definition: FeedDefinition;
  version: FeedVersion | undefined;
  status: FeedStatus;
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
  version: FeedVersion | undefined;
  dataset: Dataset | undefined;
  status: FeedStatus;
  timer: NodeJS.Timeout | undefined;
  refreshing: Promise<FeedView> | undefined;
  log: Logger;
}

export interface FeedManagerOptions {
  store: IndexStore;
  log: Logger;
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
  readonly #onChange: () => void;
  readonly #importDmarc: FeedManagerOptions['importDmarc'];
  readonly #now: () => number;
  readonly #feeds = new Map<string, LoadedFeed>();
  #closed = false;

  private constructor(options: FeedManagerOptions) {
    this.#store = options.store;
    this.#log = options.log.child({ component: 'feeds' });
    this.#onChange = options.onChange;
    this.#importDmarc = options.importDmarc;
    this.#now = options.now ?? Date.now;
  }

  /** Loads every stored feed and its version in force (parsing the stored bytes), then starts the timers. */
  static async open(options: FeedManagerOptions): Promise<FeedManager> {
    const manager = new FeedManager(options);
    for (const [key, value] of await options.store.listFeedRecords(`d${SEP}`)) {
      const definition = value as FeedDefinition;
      const id = key.slice(2);
      const feed = manager.#loaded(definition);
      feed.version = (await options.store.getFeedRecord(`v${SEP}${id}`)) as FeedVersion | undefined;
      feed.status = ((await options.store.getFeedRecord(`s${SEP}${id}`)) as FeedStatus | undefined) ?? feed.status;
      if (feed.version && definition.format !== 'dmarc') {
        try {
          const bytes = await manager.#readVersionBytes(id, feed.version);
          feed.dataset = parseFeed(bytes, definition.format as Exclude<typeof definition.format, 'dmarc'>, definition.source).dataset;
        } catch (error) {
          feed.log.error({ err: error, version: feed.version.version }, 'stored feed version cannot be loaded; the feed lists nothing until its next refresh');
        }
      }
      manager.#feeds.set(id, feed);
      manager.#schedule(feed);
    }
    manager.#log.info({ feeds: manager.#feeds.size }, 'feeds loaded');
    return manager;
  }

  #loaded(definition: FeedDefinition): LoadedFeed {
    return {
      definition,
      version: undefined,
      dataset: undefined,
      status: { lastAttemptMs: 0, lastSuccessMs: 0, lastUnchangedMs: 0, lastError: undefined },
      timer: undefined,
      refreshing: undefined,
      log: this.#log.child({ feed: definition.id }),
    };
  }

  async #readVersionBytes(id: string, version: FeedVersion): Promise<Buffer> {
    const chunks: Buffer[] = [];
    for (let index = 0; index < version.chunks; index += 1) {
      const chunk = (await this.#store.getFeedRecord(chunkKey(id, version.version, index))) as string | undefined;
      if (chunk === undefined) {
        throw new CdrError('ERR_FEED_TRUNCATED', `feed ${id} version ${version.version} misses stored chunk ${index} of ${version.chunks}`);
      }
      chunks.push(Buffer.from(chunk, 'base64'));
    }
    return Buffer.concat(chunks);
  }

  list(): FeedView[] {
    return [...this.#feeds.values()].sort((a, b) => a.definition.id.localeCompare(b.definition.id)).map(view);
  }

  /** @throws CdrError `ERR_FEED_NOT_FOUND` */
  get(id: string): FeedView {
    return view(this.#feed(id));
  }

  #feed(id: string): LoadedFeed {
    const feed = this.#feeds.get(id);
    if (!feed) {
      throw new CdrError('ERR_FEED_NOT_FOUND', `no feed with id "${id}"; cdrctl feeds list shows the feeds`, { details: { id } });
    }
    return feed;
  }

  /**
   * Stores a new feed and runs its first refresh; returns the feed after that refresh, whose status
   * records whether it succeeded.
   *
   * @throws CdrError `ERR_FEED_INVALID`, `ERR_FEED_EXISTS` (same id, or same DNS zone as another feed)
   */
  async add(input: Partial<FeedDefinition>): Promise<FeedView> {
    const definition = checkFeedDefinition(input);
    if (this.#feeds.has(definition.id)) {
      throw new CdrError('ERR_FEED_EXISTS', `a feed with id "${definition.id}" exists; remove it first or choose another id`, { details: { id: definition.id } });
    }
    const sameZone = definition.zone === '' ? undefined : [...this.#feeds.values()].find((feed) => feed.definition.zone === definition.zone);
    if (sameZone) {
      throw new CdrError('ERR_FEED_EXISTS', `feed "${sameZone.definition.id}" already serves zone ${definition.zone}; choose another zone`, {
        details: { id: definition.id, zone: definition.zone },
      });
    }

    await this.#store.writeFeedRecords([{ type: 'put', key: `d${SEP}${definition.id}`, value: definition }]);
    const feed = this.#loaded(definition);
    this.#feeds.set(definition.id, feed);
    feed.log.info({ source: definition.source, format: definition.format, zone: definition.zone, category: definition.category }, 'feed added');
    const result = await this.refresh(definition.id);
    this.#schedule(feed);
    return result;
  }

  /** Removes a feed with its stored versions; its listings and zone disappear. @throws CdrError `ERR_FEED_NOT_FOUND` */
  async remove(id: string): Promise<void> {
    const feed = this.#feed(id);
    clearTimeout(feed.timer);
    await feed.refreshing?.catch(() => undefined);
    const operations: { type: 'del'; key: string }[] = [
      { type: 'del', key: `d${SEP}${id}` },
      { type: 'del', key: `v${SEP}${id}` },
      { type: 'del', key: `s${SEP}${id}` },
    ];
    for (const [key] of await this.#store.listFeedRecords(`b${SEP}${id}${SEP}`)) {
      operations.push({ type: 'del', key });
    }
    await this.#store.writeFeedRecords(operations);
    this.#feeds.delete(id);
    feed.log.info('feed removed');
    this.#onChange();
  }

  /**
   * Refreshes one feed now and returns it afterwards. A refresh already running is joined, not
   * repeated. A failure is recorded in the status and logged; the version in force stays.
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

  async #refresh(feed: LoadedFeed): Promise<FeedView> {
    const { definition } = feed;
    const started = this.#now();
    feed.status = { ...feed.status, lastAttemptMs: started };

    // TODO: when the node is paired, only one node of the pair should fetch each refresh, and the other
    // should receive the version by replication. Until replication carries feed records, every node fetches.
    try {
      const fetched = await fetchSource({
        source: definition.source,
        maxBytes: definition.maxBytes,
        timeoutMs: definition.timeoutMs,
        caPem: definition.caPem,
        ...(feed.version?.etag ? { etag: feed.version.etag } : {}),
        ...(feed.version?.lastModified ? { lastModified: feed.version.lastModified } : {}),
      });
      const sha256 = fetched.changed ? createHash('sha256').update(fetched.bytes).digest('hex') : '';
      if (!fetched.changed || (feed.version && sha256 === feed.version.sha256)) {
        feed.status = { ...feed.status, lastSuccessMs: started, lastUnchangedMs: started, lastError: undefined };
        await this.#store.writeFeedRecords([{ type: 'put', key: `s${SEP}${definition.id}`, value: feed.status }]);
        feed.log.info({ ms: this.#now() - started }, 'feed unchanged');
        return view(feed);
      }

      let dataset: Dataset | undefined;
      let summary: { entries: number; exclusions: number; badLines: number; lineErrors: LineError[]; encoding: string };
      if (definition.format === 'dmarc') {
        if (!this.#importDmarc) {
          throw new CdrError('ERR_FEED_INVALID', 'DMARC feeds are not available in this build');
        }
        const imported = await this.#importDmarc(fetched.bytes, definition);
        summary = { entries: imported.entries, exclusions: 0, badLines: imported.lineErrors.length, lineErrors: imported.lineErrors, encoding: 'utf-8' };
      } else {
        const parsed = parseFeed(fetched.bytes, definition.format, definition.source);
        dataset = parsed.dataset;
        summary = { entries: dataset.entries, exclusions: dataset.exclusions, badLines: parsed.badLines, lineErrors: parsed.lineErrors, encoding: parsed.encoding };
      }

      const previous = feed.version;
      const version: FeedVersion = {
        version: (previous?.version ?? 0) + 1,
        importedMs: this.#now(),
        bytes: fetched.bytes.length,
        chunks: Math.ceil(fetched.bytes.length / CHUNK_BYTES),
        sha256,
        ...(fetched.etag ? { etag: fetched.etag } : {}),
        ...(fetched.lastModified ? { lastModified: fetched.lastModified } : {}),
        ...summary,
      };
      const status: FeedStatus = { ...feed.status, lastSuccessMs: started, lastError: undefined };
      await this.#commitVersion(definition.id, version, previous, fetched.bytes, status);

      feed.version = version;
      feed.dataset = dataset;
      feed.status = status;
      feed.log.info(
        { version: version.version, entries: version.entries, exclusions: version.exclusions, badLines: version.badLines, bytes: version.bytes, ms: this.#now() - started },
        'feed imported',
      );
      for (const lineError of version.lineErrors) {
        feed.log.warn({ source: definition.source, line: lineError.line, reason: lineError.reason }, 'feed line skipped');
      }
      this.#onChange();
    } catch (error) {
      const code = error instanceof CdrError ? error.code : 'ERR_FEED_FETCH';
      feed.status = { ...feed.status, lastError: { code, message: (error as Error).message, atMs: started } };
      await this.#store.writeFeedRecords([{ type: 'put', key: `s${SEP}${definition.id}`, value: feed.status }]).catch((writeError: unknown) => {
        feed.log.error({ err: writeError }, 'storing the feed status failed');
      });
      feed.log.warn({ code, err: error, versionInForce: feed.version?.version ?? 0 }, 'feed refresh failed; the version in force stays');
    }
    return view(feed);
  }

  /** Writes the new version's bytes, its metadata and status, and deletes the previous bytes, in one batch. */
  async #commitVersion(id: string, version: FeedVersion, previous: FeedVersion | undefined, bytes: Buffer, status: FeedStatus): Promise<void> {
    const operations: ({ type: 'put'; key: string; value: unknown } | { type: 'del'; key: string })[] = [];
    for (let index = 0; index < version.chunks; index += 1) {
      operations.push({ type: 'put', key: chunkKey(id, version.version, index), value: bytes.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES).toString('base64') });
    }
    operations.push({ type: 'put', key: `v${SEP}${id}`, value: version });
    operations.push({ type: 'put', key: `s${SEP}${id}`, value: status });
    for (let index = 0; previous && index < previous.chunks; index += 1) {
      operations.push({ type: 'del', key: chunkKey(id, previous.version, index) });
    }
    await this.#store.writeFeedRecords(operations);
  }

  #schedule(feed: LoadedFeed): void {
    clearTimeout(feed.timer);
    if (this.#closed || feed.definition.refreshSeconds === 0) {
      return;
    }
    const intervalMs = feed.definition.refreshSeconds * 1000;
    const dueMs = Math.max(0, feed.status.lastAttemptMs + intervalMs - this.#now());
    feed.timer = setTimeout(() => {
      if (!this.#feeds.has(feed.definition.id) || this.#closed) {
        return;
      }
      this.refresh(feed.definition.id).finally(() => this.#schedule(feed));
    }, Math.min(dueMs, 2_147_483_647));
    feed.timer.unref();
  }

  /** Stops the timers and waits for refreshes in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    for (const feed of this.#feeds.values()) {
      clearTimeout(feed.timer);
    }
    await Promise.all([...this.#feeds.values()].map((feed) => feed.refreshing?.catch(() => undefined)));
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
          expiresMs: refreshMs > 0 ? Math.max(feed.status.lastSuccessMs, feed.version.importedMs) + refreshMs : 0,
        });
      }
    }
    return listings;
  }
}

function matchKey(dataset: Dataset, kind: ObjectKindName, key: string): { match: MatchResult; subject: string } | undefined {
  switch (kind) {
    case 'ip': {
      const v4 = parseIp4(key);
      if (v4 !== undefined) {
        return { match: dataset.matchIp4(v4), subject: key };
      }
      if (ipaddr.IPv6.isValid(key)) {
        return { match: dataset.matchIp6(ip6ToBigInt(ipaddr.IPv6.parse(key))), subject: key };
      }
      return undefined;
    }
    case 'network': {
      const v4 = parseIp4Cidr(key);
      if (v4) {
        return { match: dataset.matchIp4(v4.network, v4.length), subject: key };
      }
      const v6 = parseIp6Entry(key);
      return v6 ? { match: dataset.matchIp6(v6.network, v6.length), subject: key } : undefined;
    }
    case 'domain':
      return { match: dataset.matchDomain(key), subject: key };
    case 'user': {
      const domain = key.slice(key.lastIndexOf('@') + 1);
      return domain ? { match: dataset.matchDomain(domain), subject: domain } : undefined;
    }
    default:
      return undefined;
  }
}

function chunkKey(id: string, version: number, index: number): string {
  return `b${SEP}${id}${SEP}${version.toString(16).padStart(8, '0')}${SEP}${index.toString(16).padStart(6, '0')}`;
}

function view(feed: LoadedFeed): FeedView {
  return { definition: feed.definition, version: feed.version, status: feed.status };
}
