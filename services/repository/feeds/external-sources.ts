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
import { DatasetZone, type DnsZone } from '../dns/zone.js';
import type { ReputationIndex } from '../reputation-index.js';
import type { IndexStore } from '../store.js';
import { FeedManager } from './feed-manager.js';

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
  static async start(config: Readonly<CdrConfig>, store: IndexStore, index: ReputationIndex, log: Logger): Promise<ExternalSources> {
    let sources: ExternalSources | undefined;
    const feeds = await FeedManager.open({
      store,
      log,
      onChange: () => sources?.refreshZones(),
    });
    const dnsbl = new QueryThroughCache(config.dnsbl, log);
    const dns = config.dns.enabled ? new DnsServer(log) : undefined;
    sources = new ExternalSources(feeds, dnsbl, dns, config, index);

    index.listingSource = (kind, key) => feeds.listings(kind, key);
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
    const zones: DnsZone[] = this.feeds.zoneFeeds().map(({ definition, dataset }) => new DatasetZone(definition.zone, dataset, this.#config.dns.defaultTtl));
    for (const list of this.dnsbl.lists()) {
      zones.push(new QueryThroughZone(list, this.dnsbl));
    }
    if (this.#config.dns.indexZone) {
      zones.push(new IndexZone(this.#config.dns.indexZone, this.#index));
    }
    this.#dns.setZones(zones);
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
