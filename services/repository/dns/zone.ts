/**
 * DNSBL zones and how one question is answered from them, following RFC 5782 and rbldnsd: reversed
 * IPv4 labels (`4.3.2.1.zone` for 1.2.3.4), 32 reversed nibbles for IPv6, domain names for domain
 * lists; NXDOMAIN with the SOA for a name that is not listed; SOA and NS at the zone apex.
 */

import type { Answer, SoaAnswer } from 'dns-packet';

import { Dataset, type MatchResult, type SoaRecord } from '../feeds/dataset.js';
import { formatIp4, formatIp6, parseReversedIp4, parseReversedIp6 } from '../feeds/ip.js';

/** DNS response codes used here (RFC 1035 section 4.1.1). */
export const RCODE = { NOERROR: 0, FORMERR: 1, SERVFAIL: 2, NXDOMAIN: 3, NOTIMP: 4, REFUSED: 5 } as const;

export interface ZoneAnswer {
  rcode: number;
  answers: Answer[];
  authorities: Answer[];
}

/** A zone the DNS front serves. `answer` gets the labels below the apex, lower-cased, in query order. */
export interface DnsZone {
  /** Lower-case apex without the trailing dot. */
  readonly name: string;
  answer(labels: string[], qtype: string, qname: string): ZoneAnswer | Promise<ZoneAnswer>;
}

/** Records of a listed subject (address or domain) in a zone, before they are encoded. */
export interface ZoneMatch {
  listed: boolean;
  /** A values, one record each; duplicates are sent once. */
  a: string[];
  /** TXT strings, one record each; duplicates are sent once. */
  txt: string[];
}

/** Maximum length of one TXT character-string (RFC 1035 section 3.3). */
const MAX_TXT_BYTES = 255;

/**
 * Serves one feed's dataset as an rbldnsd zone would. A zone of a combined dataset has several member
 * datasets (the sections connected to it), and a name listed in several answers with every value.
 */
export class DatasetZone implements DnsZone {
  readonly name: string;
  readonly #dataset: Dataset;
  readonly #members: Dataset[];
  readonly #ttl: number;

  /**
   * `defaultTtl` (seconds) applies when the dataset has no `$TTL`, like rbldnsd's `-t`. SOA and NS come
   * from `dataset`; entries from `members`, which default to `dataset` itself.
   */
  constructor(name: string, dataset: Dataset, defaultTtl: number, members: Dataset[] = [dataset]) {
    this.name = name.toLowerCase().replace(/\.$/, '');
    this.#dataset = dataset;
    this.#members = members;
    this.#ttl = dataset.ttl ?? defaultTtl;
  }

  answer(labels: string[], qtype: string, qname: string): ZoneAnswer {
    if (labels.length === 0) {
      return apexAnswer(this.name, qtype, this.#dataset.soa, this.#dataset.nameServers, this.#ttl);
    }

    const a: string[] = [];
    const txt: string[] = [];
    let ttl = this.#ttl;
    for (const dataset of this.#members) {
      const found = matchLabels(dataset, labels);
      if (!found) {
        continue;
      }
      ttl = dataset.ttl ?? ttl;
      for (const value of found.match.values) {
        a.push(value.a);
        if (value.txt !== undefined) {
          txt.push(dataset.expandTxt(value.txt, found.subject));
        }
      }
    }
    if (a.length === 0) {
      return negativeAnswer(this.name, RCODE.NXDOMAIN, this.#dataset.soa, this.#ttl);
    }
    return recordsAnswer(this.name, qname, qtype, { listed: true, a, txt }, this.#dataset.soa, ttl);
  }
}

/**
 * Returns the zones of one feed: its zone, or for a combined dataset one zone per subzone named in a
 * `$DATASET` line (`@` is the feed's zone), each with the sections connected to it.
 */
export function feedZones(zone: string, dataset: Dataset, defaultTtl: number): DnsZone[] {
  if (dataset.format !== 'combined') {
    return [new DatasetZone(zone, dataset, defaultTtl)];
  }
  const members = new Map<string, Dataset[]>();
  for (const part of dataset.parts) {
    for (const subzone of part.subzones) {
      const name = subzone === '@' ? zone : `${subzone}.${zone}`;
      members.set(name, [...(members.get(name) ?? []), part.dataset]);
    }
  }
  if (!members.has(zone)) {
    members.set(zone, []);
  }
  // As in rbldnsd, $SOA and $NS belong to the base zone only; a subzone answers without them.
  const subzoneApex = new Dataset('combined');
  if (dataset.ttl !== undefined) {
    subzoneApex.ttl = dataset.ttl;
  }
  return [...members].map(([name, datasets]) => new DatasetZone(name, name === zone ? dataset : subzoneApex, defaultTtl, datasets));
}

/** Matches the labels below a zone apex in one dataset; returns the match and the subject for `$`. */
function matchLabels(dataset: Dataset, labels: string[]): { match: Extract<MatchResult, { listed: true }>; subject: string } | undefined {
  let match: MatchResult = { listed: false };
  let subject = '';
  if (dataset.hasDomains) {
    match = dataset.matchDomain(labels.join('.'));
    // Like rbldnsd, `$` in a TXT template is the listed name: the base of a wildcard entry.
    subject = match.listed ? match.entry.replace(/^\*\./, '') : '';
  }
  if (!match.listed && dataset.hasIp4 && labels.length === 4) {
    const address = parseReversedIp4(labels);
    if (address !== undefined) {
      subject = formatIp4(address);
      match = dataset.matchIp4(address);
    }
  }
  if (!match.listed && dataset.hasIp6 && labels.length === 32) {
    const address = parseReversedIp6(labels);
    if (address !== undefined) {
      subject = formatIp6(address);
      match = dataset.matchIp6(address);
    }
  }
  return match.listed ? { match, subject } : undefined;
}

/** Builds the answer for a listed subject: A, TXT, or both for ANY; NODATA for other types. */
export function recordsAnswer(zone: string, qname: string, qtype: string, match: ZoneMatch, soa: SoaRecord | undefined, ttl: number): ZoneAnswer {
  const answers: Answer[] = [];
  if (qtype === 'A' || qtype === 'ANY') {
    for (const a of new Set(match.a)) {
      answers.push({ type: 'A', name: qname, ttl, class: 'IN', data: a });
    }
  }
  if (qtype === 'TXT' || qtype === 'ANY') {
    for (const txt of new Set(match.txt)) {
      answers.push({ type: 'TXT', name: qname, ttl, class: 'IN', data: [Buffer.from(txt, 'latin1').subarray(0, MAX_TXT_BYTES)] });
    }
  }
  if (answers.length === 0) {
    return negativeAnswer(zone, RCODE.NOERROR, soa, ttl);
  }
  return { rcode: RCODE.NOERROR, answers, authorities: [] };
}

/** NXDOMAIN or NODATA, with the SOA in the authority section when the zone has one (RFC 2308). */
export function negativeAnswer(zone: string, rcode: number, soa: SoaRecord | undefined, ttl: number): ZoneAnswer {
  return { rcode, answers: [], authorities: soa ? [soaRecord(zone, soa, ttl)] : [] };
}

/** Answers at the zone apex: SOA and NS when known; like rbldnsd, a SOA or NS query is refused when the zone has none. */
export function apexAnswer(
  zone: string,
  qtype: string,
  soa: SoaRecord | undefined,
  nameServers: { ttl: number; names: string[] } | undefined,
  ttl: number,
): ZoneAnswer {
  const answers: Answer[] = [];
  if ((qtype === 'SOA' || qtype === 'ANY') && soa) {
    answers.push(soaRecord(zone, soa, ttl));
  }
  if ((qtype === 'NS' || qtype === 'ANY') && nameServers) {
    for (const name of nameServers.names) {
      answers.push({ type: 'NS', name: zone, ttl: nameServers.ttl || ttl, class: 'IN', data: name });
    }
  }
  if (answers.length > 0) {
    return { rcode: RCODE.NOERROR, answers, authorities: [] };
  }
  if ((qtype === 'SOA' && !soa) || (qtype === 'NS' && !nameServers)) {
    return { rcode: RCODE.REFUSED, answers: [], authorities: [] };
  }
  return negativeAnswer(zone, RCODE.NOERROR, soa, ttl);
}

function soaRecord(zone: string, soa: SoaRecord, ttl: number): SoaAnswer {
  return {
    type: 'SOA',
    name: zone,
    ttl: soa.ttl || ttl,
    class: 'IN',
    data: {
      mname: soa.origin,
      rname: soa.person,
      serial: soa.serial,
      refresh: soa.refresh,
      retry: soa.retry,
      expire: soa.expire,
      minimum: soa.minimum,
    },
  };
}
