/**
 * A parsed feed: its entries in lookup tables, the rbldnsd specials ($SOA, $NS, $TTL, $n, $=) and the
 * A value and TXT template of each entry.
 */

import { ip4Mask, ip6Mask, type Ip4Prefix, type Ip6Prefix } from './ip.js';

/** Dataset formats a feed can have. `iplist` and `domainlist` are plain lists, one entry a line. */
export const FEED_FORMATS = ['ip4set', 'ip4trie', 'ip6trie', 'dnset', 'combined', 'iplist', 'domainlist', 'dmarc'] as const;
export type FeedFormat = (typeof FEED_FORMATS)[number];

/** The answer of one entry: an A value and a TXT template, undefined when the entry has no TXT. */
export interface ListValue {
  a: string;
  txt: string | undefined;
}

/** `$SOA ttl origin person serial refresh retry expire minttl`, times in seconds. */
export interface SoaRecord {
  ttl: number;
  origin: string;
  person: string;
  serial: number;
  refresh: number;
  retry: number;
  expire: number;
  minimum: number;
}

/** Result of a lookup: the matching entry with its values, or not listed (no entry, or an `!` exclusion). */
export type MatchResult = { listed: true; value: ListValue; entry: string; values: ListValue[] } | { listed: false };

/** One `$DATASET type[:name] subzone...` section of an rbldnsd combined dataset. */
export interface CombinedPart {
  /** The `:name` of the section, or its first subzone when it has none. */
  name: string;
  /** Subzones relative to the feed's zone; `@` is the zone itself. */
  subzones: string[];
  dataset: Dataset;
}

/** Value index of an exclusion entry in the lookup tables. */
const EXCLUDED = -1;

/** Match mode of a dnset entry: the name only, its subdomains only (`*.`), or both (`.`). */
type DomainMode = 'exact' | 'subdomains' | 'both';

export class Dataset {
  readonly format: FeedFormat;
  soa: SoaRecord | undefined;
  nameServers: { ttl: number; names: string[] } | undefined;
  /** `$TTL` of the dataset, in seconds. */
  ttl: number | undefined;
  /** `$1` to `$9` substitution variables, by digit. */
  readonly variables = new Map<string, string>();
  /** `$=` base template. */
  baseTemplate: string | undefined;
  /** Entries listed, not counting exclusions. */
  entries = 0;
  exclusions = 0;
  /** Sections of a `combined` dataset; empty for the other formats. */
  readonly parts: CombinedPart[] = [];

  readonly #values: ListValue[] = [];
  readonly #valueIds = new Map<string, number>();
  /** IPv4 tables by prefix length, longest first in `#ip4Lengths`. */
  readonly #ip4 = new Map<number, Map<number, number>>();
  /** Further values of an ip4set key that several entries cover, by `length/network`. */
  readonly #ip4More = new Map<string, number[]>();
  #ip4Lengths: number[] = [];
  readonly #ip6 = new Map<number, Map<bigint, number>>();
  #ip6Lengths: number[] = [];
  readonly #domains = new Map<string, { mode: DomainMode; value: number } >();
  readonly #wildcards = new Map<string, number>();

  constructor(format: FeedFormat) {
    this.format = format;
  }

  #valueId(value: ListValue | undefined): number {
    if (!value) {
      return EXCLUDED;
    }
    const key = `${value.a}\u0000${value.txt ?? '\u0001'}`;
    let id = this.#valueIds.get(key);
    if (id === undefined) {
      id = this.#values.length;
      this.#values.push(value);
      this.#valueIds.set(key, id);
    }
    return id;
  }

  /**
   * Adds an IPv4 prefix; `value` undefined is an exclusion. ip4set stores ranges by whole octets as
   * rbldnsd does (a /20 becomes sixteen /24 entries), so an entry in a finer octet class wins over a
   * wider one. Within one class an exclusion wins, and otherwise the key answers with the values of
   * every entry that covers it, as rbldnsd 0.998 returns one A and TXT record per entry.
   * ip4trie keeps exact lengths (longest match, the last entry of a prefix wins).
   */
  addIp4(prefix: Ip4Prefix, value: ListValue | undefined): void {
    const id = this.#valueId(value);
    if (this.format === 'ip4set') {
      const classLength = Math.max(8, Math.ceil(prefix.length / 8) * 8);
      const count = 2 ** (classLength - prefix.length);
      const step = 2 ** (32 - classLength);
      for (let index = 0; index < count; index += 1) {
        this.#putIp4(classLength, (prefix.network + index * step) >>> 0, id);
      }
    } else {
      this.#putIp4(prefix.length, prefix.network, id);
    }
    this.#count(id);
  }

  #putIp4(length: number, network: number, id: number): void {
    let table = this.#ip4.get(length);
    if (!table) {
      table = new Map();
      this.#ip4.set(length, table);
      this.#ip4Lengths = [...this.#ip4.keys()].sort((a, b) => b - a);
    }
    const previous = table.get(network);
    if (previous === EXCLUDED) {
      return;
    }
    if (previous === undefined || id === EXCLUDED || this.format !== 'ip4set') {
      table.set(network, id);
      this.#ip4More.delete(`${length}/${network}`);
      return;
    }
    if (previous !== id) {
      const more = this.#ip4More.get(`${length}/${network}`) ?? [];
      if (!more.includes(id)) {
        more.push(id);
        this.#ip4More.set(`${length}/${network}`, more);
      }
    }
  }

  addIp6(prefix: Ip6Prefix, value: ListValue | undefined): void {
    const id = this.#valueId(value);
    let table = this.#ip6.get(prefix.length);
    if (!table) {
      table = new Map();
      this.#ip6.set(prefix.length, table);
      this.#ip6Lengths = [...this.#ip6.keys()].sort((a, b) => b - a);
    }
    table.set(prefix.network, id);
    this.#count(id);
  }

  /** Adds a domain entry as dnset writes it: `name`, `*.name` (subdomains) or `.name` (both). */
  addDomain(entry: string, value: ListValue | undefined): void {
    const id = this.#valueId(value);
    if (entry.startsWith('*.')) {
      this.#wildcards.set(entry.slice(2), id);
    } else if (entry.startsWith('.')) {
      this.#wildcards.set(entry.slice(1), id);
      this.#domains.set(entry.slice(1), { mode: 'both', value: id });
    } else {
      this.#domains.set(entry, { mode: 'exact', value: id });
    }
    this.#count(id);
  }

  /** Datasets that hold entries: the sections of a combined dataset, or this one. */
  members(): Dataset[] {
    return this.format === 'combined' ? this.parts.map((part) => part.dataset) : [this];
  }

  #count(id: number): void {
    if (id === EXCLUDED) {
      this.exclusions += 1;
    } else {
      this.entries += 1;
    }
  }

  get hasIp4(): boolean {
    return this.#ip4.size > 0;
  }

  get hasIp6(): boolean {
    return this.#ip6.size > 0;
  }

  get hasDomains(): boolean {
    return this.#domains.size > 0 || this.#wildcards.size > 0;
  }

  /**
   * Returns the entry that decides `address`. With `maxLength` below 32 only entries at most that long
   * count, which is how a network key (for example a /24) is looked up.
   */
  matchIp4(address: number, maxLength = 32): MatchResult {
    for (const length of this.#ip4Lengths) {
      if (length > maxLength) {
        continue;
      }
      const network = (address & ip4Mask(length)) >>> 0;
      const id = this.#ip4.get(length)!.get(network);
      if (id !== undefined) {
        return this.#result(id, `${formatIp4Network(network)}/${length}`, this.#ip4More.get(`${length}/${network}`));
      }
    }
    return { listed: false };
  }

  matchIp6(address: bigint, maxLength = 128): MatchResult {
    for (const length of this.#ip6Lengths) {
      if (length > maxLength) {
        continue;
      }
      const network = address & ip6Mask(length);
      const id = this.#ip6.get(length)!.get(network);
      if (id !== undefined) {
        return this.#result(id, `${network.toString(16)}/${length}`);
      }
    }
    return { listed: false };
  }

  /** Matches a lower-case domain name: the name itself first, then each parent's wildcard entry. */
  matchDomain(name: string): MatchResult {
    const exact = this.#domains.get(name);
    if (exact && exact.mode !== 'subdomains') {
      return this.#result(exact.value, name);
    }
    let dot = name.indexOf('.');
    while (dot >= 0) {
      const parent = name.slice(dot + 1);
      const id = this.#wildcards.get(parent);
      if (id !== undefined) {
        return this.#result(id, `*.${parent}`);
      }
      dot = name.indexOf('.', dot + 1);
    }
    return { listed: false };
  }

  #result(id: number, entry: string, more?: number[]): MatchResult {
    if (id === EXCLUDED) {
      return { listed: false };
    }
    const value = this.#values[id]!;
    return { listed: true, value, entry, values: more ? [value, ...more.map((other) => this.#values[other]!)] : [value] };
  }

  /** Every entry with its value, for exports; exclusions have `value` undefined. */
  *allEntries(): Generator<{ entry: string; value: ListValue | undefined }> {
    for (const length of [...this.#ip4Lengths].reverse()) {
      for (const [network, id] of this.#ip4.get(length)!) {
        yield { entry: `${formatIp4Network(network)}/${length}`, value: this.#values[id] };
      }
    }
    for (const length of [...this.#ip6Lengths].reverse()) {
      for (const [network, id] of this.#ip6.get(length)!) {
        yield { entry: `${formatIp6Network(network)}/${length}`, value: this.#values[id] };
      }
    }
    for (const [name, { mode, value }] of this.#domains) {
      if (mode === 'exact') {
        yield { entry: name, value: this.#values[value] };
      }
    }
    for (const [name, id] of this.#wildcards) {
      const both = this.#domains.get(name)?.mode === 'both';
      yield { entry: both ? `.${name}` : `*.${name}`, value: this.#values[id] };
    }
  }

  /**
   * Expands a TXT template for `subject` (the IP address or domain queried): `$` is the subject, `$$`
   * a dollar sign and `$1`..`$9` the dataset's variables. A `$=` base template wraps the entry's text
   * unless that text starts with `=`.
   */
  expandTxt(template: string, subject: string): string {
    let text = template;
    if (this.baseTemplate !== undefined) {
      text = template.startsWith('=') ? template.slice(1) : this.baseTemplate.replaceAll('$=', template);
    }
    return text.replace(/\$(\$|[0-9])?/g, (_match, next: string | undefined) => {
      if (next === '$') {
        return '$';
      }
      if (next !== undefined) {
        return this.variables.get(next) ?? '';
      }
      return subject;
    });
  }
}

function formatIp4Network(network: number): string {
  return [network >>> 24, (network >>> 16) & 255, (network >>> 8) & 255, network & 255].join('.');
}

function formatIp6Network(network: bigint): string {
  const groups: string[] = [];
  for (let index = 7; index >= 0; index -= 1) {
    groups.push(((network >> BigInt(index * 16)) & 0xffffn).toString(16));
  }
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::');
}
