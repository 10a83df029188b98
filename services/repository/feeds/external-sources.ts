/**
 * The external reputation sources of one repository: the feed mirror, the query-through DNSBL cache
 * and the DNS front that serves both, wired to the reputation index.
 */

import type { CdrConfig } from '../../common/config-schema.js';
import type { Logger } from '../../common/logger.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { DnsServer } from '../dns/dns-server.js';
import { IndexZone } from '../dns/index-zone.js';
import { QueryThroughCache, QueryThroughZone } from '../dns/query-through.js';
import { feedZones, type DnsZone } from '../dns/zone.js';
import type { HybridLogicalClock } from '../hlc.js';
import type { ReputationIndex } from '../reputation-index.js';
import type { IndexStore } from '../store.js';
import { importDmarcReport } from './dmarc.js';
import { FeedManager, type FeedListing } from './feed-manager.js';
import { parseIp4 } from './ip.js';
import { CdrError } from '../../common/errors.js';
import type { ObjectKindName } from '../../../modules/protocol/constants.js';

/** This node's place in its pair, which decides which node fetches each feed. */
export interface PairIdentity {
  nodeId: string;
  clock: HybridLogicalClock;
  /** Id of the paired node, or undefined when this node is not paired. */
  peerNodeId: () => string | undefined;
}

export class ExternalSources {
  readonly feeds: FeedManager;
  readonly dnsbl: QueryThroughCache;
  readonly #dns: DnsServer | undefined;
  readonly #config: Readonly<CdrConfig>;
  readonly #index: ReputationIndex;
  #dnsAddress = '';

  private constructor(feeds: FeedManager, dnsbl: QueryThroughCache, dns: DnsServer | undefined, config: Readonly<CdrConfig>, index: ReputationIndex) {
    this.feeds = feeds;
    this.dnsbl = dnsbl;
    this.#dns = dns;
    this.#config = config;
    this.#index = index;
  }

  /**
   * Loads the feeds, connects their listings to `index`, and starts the DNS front when
   * `dns.enabled`.
   *
   * @throws CdrError `ERR_DNS_LISTEN`
   */
  static async start(config: Readonly<CdrConfig>, store: IndexStore, index: ReputationIndex, pair: PairIdentity, log: Logger): Promise<ExternalSources> {
    // The feed manager calls back into the instance created below it.
    const created: { sources?: ExternalSources } = {};
    const feeds = await FeedManager.open({
      store,
      log,
      nodeId: pair.nodeId,
      clock: pair.clock,
      peerNodeId: pair.peerNodeId,
      grace: { seconds: config.feeds.fallbackGraceSeconds, percent: config.feeds.fallbackGracePercent },
      onChange: () => created.sources?.refreshZones(),
      importDmarc: (bytes, feed) => importDmarcReport(bytes, feed, store, index, log),
    });
    const dnsbl = new QueryThroughCache(config.dnsbl, log);
    const dns = config.dns.enabled ? new DnsServer(log) : undefined;
    const sources = new ExternalSources(feeds, dnsbl, dns, config, index);
    created.sources = sources;

    index.listingSource = async (kind, key) => [...feeds.listings(kind, key), ...(await sources.#dnsblListings(kind, key))];
    sources.refreshZones();
    if (dns) {
      const bound = await dns.listen(config.dns.host, config.dns.port);
      sources.#dnsAddress = `${bound.host}:${bound.port}`;
    }
    return sources;
  }

  /** host:port of the DNS front, empty when it is disabled. */
  get dnsAddress(): string {
    return this.#dnsAddress;
  }

  /** Drops cached reputations and rebuilds the zones, after a feed version came into force or a feed went away. */
  refreshZones(): void {
    this.#index.clearCache();
    if (!this.#dns) {
      return;
    }
    const zones: DnsZone[] = this.feeds.zoneFeeds().flatMap(({ definition, dataset }) => feedZones(definition.zone, dataset, this.#config.dns.defaultTtl));
    for (const list of this.dnsbl.lists()) {
      zones.push(new QueryThroughZone(list, this.dnsbl));
    }
    if (this.#config.dns.indexZone) {
      zones.push(new IndexZone(this.#config.dns.indexZone, this.#index));
    }
    this.#dns.setZones(zones);
  }

  /**
   * Queries an IPv4 key in every query-through list. A list whose query fails (timeout, error code,
   * budget used up) adds an entry with `listed` false and the error as its reason, which no policy
   * weighs; the cache logs and counts the failure.
   */
  async #dnsblListings(kind: ObjectKindName, key: string): Promise<FeedListing[]> {
    if (kind !== 'ip' || parseIp4(key) === undefined) {
      return [];
    }
    const listings = await Promise.all(
      this.dnsbl.lists().map(async (list): Promise<FeedListing | undefined> => {
        try {
          const answer = await this.dnsbl.lookupIp4(list.zone, key);
          if (!answer.listed) {
            return undefined;
          }
          return {
            source: list.zone,
            category: list.category,
            listed: true,
            returnCode: answer.a.join(','),
            reason: answer.meanings.join('; ') || answer.txt.join('; ') || `listed by ${list.zone}`,
            fetchedMs: answer.expiresMs - answer.ttlSeconds * 1000,
            expiresMs: answer.expiresMs,
          };
        } catch (error) {
          const code = error instanceof CdrError ? error.code : 'ERR_DNSBL_UPSTREAM';
          return { source: list.zone, category: list.category, listed: false, returnCode: '', reason: `lookup failed: ${code}: ${(error as Error).message}`, fetchedMs: Date.now(), expiresMs: 0 };
        }
      }),
    );
    return listings.filter((listing): listing is FeedListing => listing !== undefined);
  }

  dnsblStatus(): impcdr.v1.IDnsblStatus {
    return { lists: this.dnsbl.counters() };
  }

  async stop(): Promise<void> {
    await this.feeds.close();
    await this.#dns?.close();
    this.dnsbl.close();
  }
}

