/**
 * The query-through DNSBL cache: answers for DNSBLs that are not mirrored are fetched from the
 * upstream DNSBL through the configured resolvers, cached for their TTL (negative answers for the
 * SOA minimum, RFC 2308), with one upstream query per key in flight however many clients ask.
 */

import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';

import dnsPacket from 'dns-packet';

import type { CdrConfig, DnsblListConfig } from '../../common/config-schema.js';
import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { parseIp4 } from '../feeds/ip.js';
import { negativeAnswer, RCODE, recordsAnswer, type DnsZone, type ZoneAnswer } from './zone.js';

/** Cached answers kept at most; the oldest is dropped first. */
const MAX_CACHE_ENTRIES = 200_000;

/** A DNSBL list with its return codes expanded. */
export interface DnsblList {
  zone: string;
  category: string;
  dailyBudget: number;
  /** Meaning of each return code, one key per address. */
  codes: Map<string, string>;
}

/** An upstream answer as cached. `listed` is false for NXDOMAIN. */
export interface DnsblAnswer {
  listed: boolean;
  a: string[];
  txt: string[];
  /** Meanings of the A values found in the list's codes. */
  meanings: string[];
  ttlSeconds: number;
  expiresMs: number;
}

interface ListCounters {
  made: number;
  saved: number;
  errors: number;
  budgetDay: string;
  budgetUsed: number;
}

type QueryType = 'A' | 'TXT';

/**
 * Expands return codes written as single addresses or ranges of the last octet (`127.0.1.2-6`).
 *
 * @throws CdrError `ERR_CONFIG_INVALID` for a key that is neither
 */
export function expandReturnCodes(zone: string, codes: Record<string, string>): Map<string, string> {
  const expanded = new Map<string, string>();
  for (const [key, meaning] of Object.entries(codes)) {
    const range = /^(\d+\.\d+\.\d+\.)(\d+)-(\d+)$/.exec(key);
    if (range) {
      const first = Number(range[2]);
      const last = Number(range[3]);
      if (parseIp4(`${range[1]}${first}`) === undefined || last > 255 || last < first) {
        throw invalidCode(zone, key);
      }
      for (let octet = first; octet <= last; octet += 1) {
        expanded.set(`${range[1]}${octet}`, meaning);
      }
    } else if (parseIp4(key) !== undefined) {
      expanded.set(key, meaning);
    } else {
      throw invalidCode(zone, key);
    }
  }
  return expanded;
}

function invalidCode(zone: string, key: string): CdrError {
  return new CdrError('ERR_CONFIG_INVALID', `dnsbl.lists ${zone}: return code "${key}" must be an IPv4 address or a range such as 127.0.1.2-6`, {
    details: { key: 'dnsbl.lists.codes', value: key },
  });
}

/** Tells whether an A value is a DNSBL error code (127.255.255.0/24, as Spamhaus uses it), never a listing. */
export function isErrorCode(a: string): boolean {
  return a.startsWith('127.255.255.');
}

export class QueryThroughCache {
  readonly #config: CdrConfig['dnsbl'];
  readonly #log: Logger;
  readonly #lists = new Map<string, DnsblList>();
  readonly #counters = new Map<string, ListCounters>();
  readonly #cache = new Map<string, DnsblAnswer>();
  readonly #inFlight = new Map<string, Promise<DnsblAnswer>>();
  readonly #now: () => number;
  #nextResolver = 0;

  /** @throws CdrError `ERR_CONFIG_INVALID` for a return code that cannot be read */
  constructor(config: CdrConfig['dnsbl'], log: Logger, now: () => number = Date.now) {
    this.#config = config;
    this.#log = log.child({ component: 'dnsbl' });
    this.#now = now;
    for (const list of config.lists as DnsblListConfig[]) {
      const zone = list.zone.toLowerCase();
      this.#lists.set(zone, { zone, category: list.category ?? 'block', dailyBudget: list.dailyBudget ?? 0, codes: expandReturnCodes(zone, list.codes ?? {}) });
      this.#counters.set(zone, { made: 0, saved: 0, errors: 0, budgetDay: '', budgetUsed: 0 });
    }
  }

  lists(): DnsblList[] {
    return [...this.#lists.values()];
  }

  counters(): { zone: string; queriesMade: number; queriesSaved: number; budgetUsed: number; dailyBudget: number; errors: number }[] {
    return [...this.#lists.values()].map((list) => {
      const counters = this.#counters.get(list.zone)!;
      return {
        zone: list.zone,
        queriesMade: counters.made,
        queriesSaved: counters.saved,
        budgetUsed: counters.budgetDay === utcDay(this.#now()) ? counters.budgetUsed : 0,
        dailyBudget: list.dailyBudget,
        errors: counters.errors,
      };
    });
  }

  /** Looks up an IPv4 address in `zone`, by its reversed name. */
  lookupIp4(zone: string, address: string): Promise<DnsblAnswer> {
    return this.query(zone, `${address.split('.').reverse().join('.')}.${zone}`, 'A');
  }

  /**
   * Returns the answer for `name` (a name inside `zone`) from the cache, from a query in flight, or
   * from one new upstream query.
   *
   * @throws CdrError `ERR_DNSBL_UNKNOWN_LIST`, `ERR_DNSBL_BUDGET_EXHAUSTED`, `ERR_DNSBL_TIMEOUT`,
   *   `ERR_DNSBL_UPSTREAM` (SERVFAIL, REFUSED, or an error code such as 127.255.255.254)
   */
  async query(zone: string, name: string, type: QueryType): Promise<DnsblAnswer> {
    const list = this.#lists.get(zone.toLowerCase());
    if (!list) {
      throw new CdrError('ERR_DNSBL_UNKNOWN_LIST', `${zone} is not in dnsbl.lists; add it to query it through the cache`, { details: { zone } });
    }
    const counters = this.#counters.get(list.zone)!;
    const key = `${type} ${name.toLowerCase()}`;
    const now = this.#now();

    const cached = this.#cache.get(key);
    if (cached && cached.expiresMs > now) {
      counters.saved += 1;
      return cached;
    }
    if (cached) {
      this.#cache.delete(key);
    }
    const pending = this.#inFlight.get(key);
    if (pending) {
      counters.saved += 1;
      return pending;
    }

    const day = utcDay(now);
    if (counters.budgetDay !== day) {
      counters.budgetDay = day;
      counters.budgetUsed = 0;
    }
    if (list.dailyBudget > 0 && counters.budgetUsed >= list.dailyBudget) {
      throw new CdrError('ERR_DNSBL_BUDGET_EXHAUSTED', `${list.zone}: the daily budget of ${list.dailyBudget} upstream queries is used up until 00:00 UTC`, {
        details: { zone: list.zone, dailyBudget: list.dailyBudget },
      });
    }
    counters.budgetUsed += 1;
    counters.made += 1;

    const query = this.#ask(list, name, type).then(
      (answer) => {
        this.#store(key, answer);
        return answer;
      },
      (error: unknown) => {
        counters.errors += 1;
        this.#log.warn({ zone: list.zone, name, type, code: (error as CdrError).code, err: error }, 'upstream DNSBL query failed');
        throw error;
      },
    );
    const tracked = query.finally(() => this.#inFlight.delete(key));
    this.#inFlight.set(key, tracked);
    return tracked;
  }

  #store(key: string, answer: DnsblAnswer): void {
    if (answer.ttlSeconds <= 0) {
      return;
    }
    this.#cache.set(key, answer);
    if (this.#cache.size > MAX_CACHE_ENTRIES) {
      this.#cache.delete(this.#cache.keys().next().value!);
    }
  }

  /** Sends the query to each resolver in turn until one answers. */
  async #ask(list: DnsblList, name: string, type: QueryType): Promise<DnsblAnswer> {
    const resolvers = this.#config.resolvers;
    if (resolvers.length === 0) {
      throw new CdrError('ERR_DNSBL_UPSTREAM', `no dnsbl.resolvers are configured, so ${list.zone} cannot be queried`, { details: { zone: list.zone } });
    }
    let lastError: unknown;
    for (let attempt = 0; attempt < resolvers.length; attempt += 1) {
      const resolver = resolvers[(this.#nextResolver + attempt) % resolvers.length]!;
      try {
        const response = await udpQuery(resolver, name, type, this.#config.timeoutMs);
        this.#nextResolver = (this.#nextResolver + attempt) % resolvers.length;
        return this.#interpret(list, name, response);
      } catch (error) {
        lastError = error;
        if ((error as CdrError).code !== 'ERR_DNSBL_TIMEOUT') {
          throw error;
        }
      }
    }
    throw lastError;
  }

  #interpret(list: DnsblList, name: string, response: dnsPacket.DecodedPacket): DnsblAnswer {
    const rcode = (response as { rcode?: string }).rcode;
    const now = this.#now();
    if (rcode === 'NXDOMAIN') {
      const soa = response.authorities?.find((record) => record.type === 'SOA') as dnsPacket.SoaAnswer | undefined;
      const ttl = soa ? Math.min(soa.ttl ?? 0, soa.data.minimum ?? 0) : this.#config.negativeTtlSeconds;
      const ttlSeconds = Math.min(ttl, this.#config.maxTtlSeconds);
      return { listed: false, a: [], txt: [], meanings: [], ttlSeconds, expiresMs: now + ttlSeconds * 1000 };
    }
    if (rcode !== 'NOERROR') {
      throw new CdrError('ERR_DNSBL_UPSTREAM', `${list.zone}: upstream answered ${rcode} for ${name}`, { details: { zone: list.zone, name, rcode } });
    }

    const answers = (response.answers ?? []).filter((record) => record.type === 'A' || record.type === 'TXT') as (dnsPacket.StringAnswer | dnsPacket.TxtAnswer)[];
    const a = answers.filter((record) => record.type === 'A').map((record) => String(record.data));
    const errorCodes = a.filter(isErrorCode);
    if (errorCodes.length > 0) {
      throw new CdrError('ERR_DNSBL_UPSTREAM', `${list.zone}: upstream returned error code ${errorCodes.join(', ')} for ${name}; this is not a listing (the resolver may be blocked or over quota)`, {
        details: { zone: list.zone, name, codes: errorCodes },
      });
    }
    const txt = answers
      .filter((record) => record.type === 'TXT')
      .map((record) => ([] as (string | Buffer)[]).concat(record.data as string | Buffer | (string | Buffer)[]).map((part) => part.toString()).join(''));
    const ttl = answers.length > 0 ? Math.min(...answers.map((record) => record.ttl ?? 0)) : this.#config.negativeTtlSeconds;
    const ttlSeconds = Math.min(ttl, this.#config.maxTtlSeconds);
    return {
      listed: answers.length > 0,
      a,
      txt,
      meanings: a.flatMap((value) => (list.codes.has(value) ? [list.codes.get(value)!] : [])),
      ttlSeconds,
      expiresMs: now + ttlSeconds * 1000,
    };
  }

  close(): void {
    this.#cache.clear();
  }
}

/** Serves a query-through list on the DNS front: A and TXT questions go through the cache. */
export class QueryThroughZone implements DnsZone {
  readonly name: string;
  readonly #cache: QueryThroughCache;

  constructor(list: DnsblList, cache: QueryThroughCache) {
    this.name = list.zone;
    this.#cache = cache;
  }

  async answer(labels: string[], qtype: string, qname: string): Promise<ZoneAnswer> {
    if (labels.length === 0 || (qtype !== 'A' && qtype !== 'TXT')) {
      return negativeAnswer(this.name, labels.length === 0 ? RCODE.NOERROR : RCODE.NOTIMP, undefined, 0);
    }
    try {
      const answer = await this.#cache.query(this.name, qname, qtype);
      if (!answer.listed) {
        return negativeAnswer(this.name, RCODE.NXDOMAIN, undefined, answer.ttlSeconds);
      }
      const ttl = Math.max(0, Math.round((answer.expiresMs - Date.now()) / 1000));
      return recordsAnswer(this.name, qname, qtype, { listed: true, a: answer.a, txt: answer.txt }, undefined, ttl);
    } catch {
      return { rcode: RCODE.SERVFAIL, answers: [], authorities: [] };
    }
  }
}

/** Sends one UDP query to "address:port" and returns the decoded response. */
function udpQuery(resolver: string, name: string, type: QueryType, timeoutMs: number): Promise<dnsPacket.DecodedPacket> {
  const separator = resolver.lastIndexOf(':');
  const address = resolver.slice(0, separator).replace(/^\[|\]$/g, '');
  const port = Number(resolver.slice(separator + 1));
  const id = randomInt(0, 65_536);
  const socket = createSocket(address.includes(':') ? 'udp6' : 'udp4');
  const message = dnsPacket.encode({ type: 'query', id, flags: dnsPacket.RECURSION_DESIRED, questions: [{ type, name, class: 'IN' }] });

  return new Promise((resolveQuery, rejectQuery) => {
    const timer = setTimeout(() => {
      socket.close();
      rejectQuery(new CdrError('ERR_DNSBL_TIMEOUT', `resolver ${resolver} did not answer ${type} ${name} within ${timeoutMs} ms`, { details: { resolver, name } }));
    }, timeoutMs);
    socket.on('message', (data) => {
      let response: dnsPacket.DecodedPacket;
      try {
        response = dnsPacket.decode(data);
      } catch {
        return;
      }
      // A response with another id or question is not ours (RFC 5452 section 4.3); keep waiting.
      if (response.id !== id || response.questions?.[0]?.name.toLowerCase() !== name.toLowerCase()) {
        return;
      }
      clearTimeout(timer);
      socket.close();
      resolveQuery(response);
    });
    socket.on('error', (error) => {
      clearTimeout(timer);
      socket.close();
      rejectQuery(new CdrError('ERR_DNSBL_UPSTREAM', `querying resolver ${resolver} failed: ${error.message}`, { cause: error, details: { resolver } }));
    });
    socket.send(message, port, address);
  });
}

function utcDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}


