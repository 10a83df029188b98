/**
 * Parsers of feed data: rbldnsd datasets (ip4set, ip4trie, ip6trie, dnset, combined) and plain IP/CIDR and
 * domain lists. A bad line is skipped and reported with its number; a file broken as a whole is
 * rejected with a `CdrError`, so the caller keeps the version in force.
 */

import { domainToASCII } from 'node:url';

import { CdrError } from '../../common/errors.js';
import { Dataset, type FeedFormat, type ListValue, type SoaRecord } from './dataset.js';
import { parseIp4Cidr, parseIp4Entry, parseIp6Entry, type Ip4Prefix, type Ip6Prefix } from './ip.js';

/** A line that was skipped, with its 1-based number and the reason. */
export interface LineError {
  line: number;
  reason: string;
}

export interface ParseResult {
  dataset: Dataset;
  /** The first MAX_REPORTED_LINE_ERRORS bad lines. */
  lineErrors: LineError[];
  badLines: number;
  /** `utf-8`, or `latin1` when the bytes are not valid UTF-8. */
  encoding: 'utf-8' | 'latin1';
}

/** Bad lines kept in a feed's status; the count covers every one. */
export const MAX_REPORTED_LINE_ERRORS = 20;

/** rbldnsd's default A value when neither the entry nor a `:` line gives one. */
const DEFAULT_A = '127.0.0.2';

/** Shortest IPv4 and IPv6 prefixes a feed may list; a shorter entry is a bad line and /0 rejects the file. */
export const MIN_IP4_PREFIX = 8;
export const MIN_IP6_PREFIX = 16;

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Decodes feed bytes as UTF-8, or as Latin-1 when they are not valid UTF-8 (UCEPROTECT headers are). */
export function decodeFeedText(bytes: Uint8Array): { text: string; encoding: 'utf-8' | 'latin1' } {
  try {
    return { text: utf8.decode(bytes), encoding: 'utf-8' };
  } catch {
    return { text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('latin1'), encoding: 'latin1' };
  }
}

/**
 * Parses feed bytes in `format`. `name` (a path or URL) is used in messages.
 *
 * @throws CdrError `ERR_FEED_EMPTY` (no entry at all), `ERR_FEED_FORMAT` (more than half the data lines
 *   are bad, or `$DATASET`), `ERR_FEED_LISTS_EVERYTHING` (a /0 entry)
 */
export function parseFeed(bytes: Uint8Array, format: Exclude<FeedFormat, 'dmarc'>, name: string): ParseResult {
  const { text, encoding } = decodeFeedText(bytes);
  const dataset = new Dataset(format);
  const state: ParserState = {
    dataset,
    common: dataset,
    skipping: false,
    name,
    defaultValue: { a: DEFAULT_A, txt: undefined },
    lineErrors: [],
    badLines: 0,
    dataLines: 0,
  };

  const lines = text.split('\n');
  if (lines.at(-1) === '') {
    lines.pop();
  }
  lines.forEach((rawLine, index) => parseLine(state, rawLine.replace(/\r$/, ''), index + 1));
  for (const part of dataset.parts) {
    dataset.entries += part.dataset.entries;
    dataset.exclusions += part.dataset.exclusions;
  }

  if (dataset.entries === 0 && dataset.exclusions === 0) {
    if (state.dataLines === 0) {
      throw new CdrError('ERR_FEED_EMPTY', `${name}: no entries in ${lines.length} lines; expected at least one ${format} entry, so the version in force stays`, {
        details: { name, lines: lines.length },
      });
    }
    throw formatError(state, format);
  }
  if (state.badLines * 2 > state.dataLines) {
    throw formatError(state, format);
  }
  return { dataset, lineErrors: state.lineErrors, badLines: state.badLines, encoding };
}

interface ParserState {
  /** Dataset that entries go to: the file's, or the current `$DATASET` section's. */
  dataset: Dataset;
  /** The file's dataset, which contains `$SOA` and `$NS` (and, in a combined file, the sections). */
  common: Dataset;
  /** True inside a `$DATASET` section of a type not supported here, whose lines are skipped. */
  skipping: boolean;
  name: string;
  defaultValue: ListValue;
  lineErrors: LineError[];
  badLines: number;
  dataLines: number;
}

function formatError(state: ParserState, format: string): CdrError {
  const first = state.lineErrors[0];
  return new CdrError(
    'ERR_FEED_FORMAT',
    `${state.name}: ${state.badLines} of ${state.dataLines} data lines are not ${format} entries` +
      (first ? ` (line ${first.line}: ${first.reason})` : '') +
      '; check the feed format, the version in force stays',
    { details: { name: state.name, badLines: state.badLines, dataLines: state.dataLines } },
  );
}

function reportBadLine(state: ParserState, line: number, reason: string): void {
  state.badLines += 1;
  if (state.lineErrors.length < MAX_REPORTED_LINE_ERRORS) {
    state.lineErrors.push({ line, reason });
  }
}

function parseLine(state: ParserState, line: string, lineNumber: number): void {
  const { dataset } = state;
  const plain = dataset.format === 'iplist' || dataset.format === 'domainlist';

  if (line.trim() === '') {
    return;
  }
  if (!plain && (line.startsWith('$') || line.startsWith('#$') || line.startsWith(':$'))) {
    parseSpecial(state, line.slice(line.indexOf('$') + 1), lineNumber);
    return;
  }
  if (line.startsWith('#') || line.startsWith(';') || (plain && line.startsWith('//')) || state.skipping) {
    return;
  }
  // In ip6trie a line starting with "::" is a compressed address (::1), not a default value.
  if (!plain && line.startsWith(':') && !(dataset.format === 'ip6trie' && line.startsWith('::'))) {
    const value = parseValue(line, state.defaultValue, true);
    if (value) {
      state.defaultValue = value;
    } else {
      reportBadLine(state, lineNumber, `invalid default A value in "${clip(line)}"`);
    }
    return;
  }

  state.dataLines += 1;
  const trimmed = line.trim();
  const space = trimmed.search(/\s/);
  let entry = space >= 0 ? trimmed.slice(0, space) : trimmed;
  const rest = space >= 0 ? trimmed.slice(space).trim() : '';

  const excluded = entry.startsWith('!');
  if (excluded) {
    entry = entry.slice(1);
  }

  if (plain && rest !== '' && !rest.startsWith('#') && !rest.startsWith(';')) {
    reportBadLine(state, lineNumber, `expected one entry per line, got "${clip(trimmed)}"`);
    return;
  }

  let value: ListValue | undefined;
  if (excluded) {
    value = undefined;
  } else if (plain || rest === '' || rest.startsWith('#') || rest.startsWith(';')) {
    value = state.defaultValue;
  } else {
    value = parseValue(rest, state.defaultValue, false);
    if (!value) {
      reportBadLine(state, lineNumber, `invalid A value in "${clip(rest)}"`);
      return;
    }
  }

  const reason = addEntry(state, entry, value);
  if (reason) {
    reportBadLine(state, lineNumber, reason);
  }
}

/** Adds one entry; returns the reason when the entry is invalid. */
function addEntry(state: ParserState, entry: string, value: ListValue | undefined): string | undefined {
  const { dataset } = state;
  switch (dataset.format) {
    case 'ip4set': {
      const prefixes = parseIp4Entry(entry);
      return prefixes ? addIp4(state, prefixes, value, entry) : `"${clip(entry)}" is not an IPv4 address, prefix or range`;
    }
    case 'ip4trie': {
      const prefix = parseIp4Cidr(entry);
      return prefix ? addIp4(state, [prefix], value, entry) : `"${clip(entry)}" is not an IPv4 address or CIDR`;
    }
    case 'ip6trie': {
      const prefix = parseIp6Entry(entry);
      return prefix ? addIp6(state, prefix, value, entry) : `"${clip(entry)}" is not an IPv6 address or CIDR`;
    }
    case 'iplist': {
      const prefix4 = parseIp4Cidr(entry);
      if (prefix4) {
        return addIp4(state, [prefix4], value, entry);
      }
      const prefix6 = entry.includes(':') ? parseIp6Entry(entry) : undefined;
      return prefix6 ? addIp6(state, prefix6, value, entry) : `"${clip(entry)}" is not an IPv4 or IPv6 address or CIDR`;
    }
    case 'dnset':
    case 'domainlist': {
      const name = normaliseDomainEntry(entry);
      if (!name) {
        return `"${clip(entry)}" is not a domain name`;
      }
      dataset.addDomain(name, value);
      return undefined;
    }
    default:
      return `"${clip(entry)}" comes before the first $DATASET line of the combined file`;
  }
}

function addIp4(state: ParserState, prefixes: Ip4Prefix[], value: ListValue | undefined, entry: string): string | undefined {
  for (const prefix of prefixes) {
    if (prefix.length === 0 && value) {
      throw new CdrError(
        'ERR_FEED_LISTS_EVERYTHING',
        `${state.name}: entry "${entry}" lists every IPv4 address; the file is rejected and the version in force stays`,
        { details: { name: state.name, entry } },
      );
    }
    if (prefix.length < MIN_IP4_PREFIX && value) {
      return `"${entry}" is shorter than /${MIN_IP4_PREFIX}, the shortest prefix a feed may list`;
    }
  }
  for (const prefix of prefixes) {
    state.dataset.addIp4(prefix, value);
  }
  return undefined;
}

function addIp6(state: ParserState, prefix: Ip6Prefix, value: ListValue | undefined, entry: string): string | undefined {
  if (prefix.length === 0 && value) {
    throw new CdrError(
      'ERR_FEED_LISTS_EVERYTHING',
      `${state.name}: entry "${entry}" lists every IPv6 address; the file is rejected and the version in force stays`,
      { details: { name: state.name, entry } },
    );
  }
  if (prefix.length < MIN_IP6_PREFIX && value) {
    return `"${entry}" is shorter than /${MIN_IP6_PREFIX}, the shortest prefix a feed may list`;
  }
  state.dataset.addIp6(prefix, value);
  return undefined;
}

/** Lower-cases a domain entry and converts it to ASCII (punycode), keeping a `*.` or `.` wildcard prefix. */
function normaliseDomainEntry(entry: string): string | undefined {
  let prefix = '';
  let name = entry;
  if (name.startsWith('*.')) {
    prefix = '*.';
    name = name.slice(2);
  } else if (name.startsWith('.')) {
    prefix = '.';
    name = name.slice(1);
  }
  name = name.replace(/\.$/, '');
  if (name === '' || name.length > 253) {
    return undefined;
  }
  const ascii = /^[\x21-\x7e]+$/.test(name) ? name.toLowerCase() : domainToASCII(name);
  if (!ascii || !ascii.split('.').every((label) => /^[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/.test(label))) {
    return undefined;
  }
  return prefix + ascii;
}

/**
 * Parses an A+TXT value: `:A:TXT`, `:A:` (no TXT), `:A` (the default TXT) or `TXT` (the default A).
 * An A value of fewer than four octets is completed with 127.0.0 in front (`:2:` is 127.0.0.2).
 */
function parseValue(text: string, defaults: ListValue, isDefaultLine: boolean): ListValue | undefined {
  if (!text.startsWith(':')) {
    return { a: defaults.a, txt: text };
  }
  const second = text.indexOf(':', 1);
  const aText = (second >= 0 ? text.slice(1, second) : text.slice(1)).trim();
  const a = aText === '' ? defaults.a : completeA(aText);
  if (!a) {
    return undefined;
  }
  if (second < 0) {
    return { a, txt: isDefaultLine ? undefined : defaults.txt };
  }
  const txt = text.slice(second + 1).trim();
  return { a, txt: txt === '' ? undefined : txt };
}

function completeA(text: string): string | undefined {
  const octets = text.split('.');
  if (octets.length > 4 || !octets.every((octet) => /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/.test(octet))) {
    return undefined;
  }
  return [...['127', '0', '0'].slice(0, 4 - octets.length), ...octets].join('.');
}

/** Parses a `$` special line (without the `$`): SOA, NS, TTL, `$n` variables, `$=`; others are ignored. */
function parseSpecial(state: ParserState, text: string, lineNumber: number): void {
  const { dataset } = state;
  const [keyword = '', ...fields] = text.trim().split(/\s+/);

  if (/^[0-9]$/.test(keyword)) {
    dataset.variables.set(keyword, text.trim().slice(1).trim());
    return;
  }
  if (keyword === '=') {
    dataset.baseTemplate = text.trim().slice(1).trim();
    return;
  }

  switch (keyword.toUpperCase()) {
    case 'SOA': {
      if (state.common.soa) {
        return;
      }
      const soa = parseSoa(fields);
      if (soa) {
        state.common.soa = soa;
      } else {
        reportBadLine(state, lineNumber, `$SOA needs "ttl origin person serial refresh retry expire minttl", got "${clip(text)}"`);
      }
      return;
    }
    case 'NS': {
      if (state.common.nameServers) {
        return;
      }
      const ttl = parseTime(fields[0] ?? '');
      const names = fields.slice(1).filter((name) => !name.startsWith('-'));
      if (ttl === undefined || names.length === 0) {
        reportBadLine(state, lineNumber, `$NS needs "ttl nameserver...", got "${clip(text)}"`);
        return;
      }
      state.common.nameServers = { ttl, names: names.slice(0, 32).map((name) => name.replace(/\.$/, '')) };
      return;
    }
    case 'TTL': {
      const ttl = parseTime(fields[0] ?? '');
      if (ttl === undefined) {
        reportBadLine(state, lineNumber, `$TTL needs a time, got "${clip(text)}"`);
      } else {
        dataset.ttl = ttl;
      }
      return;
    }
    case 'DATASET':
      startSection(state, fields, lineNumber);
      return;
    default:
      // $TIMESTAMP, $MAXRANGE4 and unknown specials do not change what is listed here.
      return;
  }
}

const SECTION_FORMATS = ['ip4set', 'ip4trie', 'ip6trie', 'dnset'] as const;

/**
 * Starts a `$DATASET type[:name] subzone...` section of a combined file. A section inherits the
 * file's `$TTL` and `$n` variables and starts without a default A+TXT, as in rbldnsd.
 *
 * @throws CdrError `ERR_FEED_FORMAT` when the file is not a combined feed
 */
function startSection(state: ParserState, fields: string[], lineNumber: number): void {
  const common = state.common;
  if (common.format !== 'combined') {
    throw new CdrError('ERR_FEED_FORMAT', `${state.name}:${lineNumber}: $DATASET makes this a combined dataset; add the feed with format combined`, {
      details: { name: state.name, line: lineNumber },
    });
  }

  const [typeAndName = '', ...subzones] = fields;
  const [type = '', sectionName] = typeAndName.split(':');
  if (!(SECTION_FORMATS as readonly string[]).includes(type) || subzones.length === 0) {
    state.skipping = true;
    reportBadLine(state, lineNumber, `$DATASET needs one of ${SECTION_FORMATS.join(', ')} and at least one subzone, got "${clip(fields.join(' '))}"; its lines are skipped`);
    return;
  }

  const dataset = new Dataset(type as (typeof SECTION_FORMATS)[number]);
  if (common.ttl !== undefined) {
    dataset.ttl = common.ttl;
  }
  for (const [digit, text] of common.variables) {
    dataset.variables.set(digit, text);
  }
  dataset.baseTemplate = common.baseTemplate;
  common.parts.push({ name: sectionName || subzones[0]!, subzones: subzones.map((zone) => zone.toLowerCase()), dataset });
  state.dataset = dataset;
  state.skipping = false;
  state.defaultValue = { a: DEFAULT_A, txt: undefined };
}

function parseSoa(fields: string[]): SoaRecord | undefined {
  if (fields.length !== 8) {
    return undefined;
  }
  const [ttl, origin, person, serial, refresh, retry, expire, minimum] = fields as [string, string, string, string, string, string, string, string];
  const times = [ttl, refresh, retry, expire, minimum].map(parseTime);
  if (times.some((value) => value === undefined) || !/^[0-9]{1,10}$/.test(serial)) {
    return undefined;
  }
  const [ttlSeconds, refreshSeconds, retrySeconds, expireSeconds, minimumSeconds] = times as number[];
  return {
    ttl: ttlSeconds!,
    origin: origin.replace(/\.$/, ''),
    person: person.replace(/\.$/, ''),
    serial: Number(serial),
    refresh: refreshSeconds!,
    retry: retrySeconds!,
    expire: expireSeconds!,
    minimum: minimumSeconds!,
  };
}

const TIME_UNITS: Record<string, number> = { '': 1, s: 1, m: 60, h: 3600, d: 86_400, w: 604_800 };

/** Parses an rbldnsd time (`3600`, `1h`, `2w`) in seconds. */
export function parseTime(text: string): number | undefined {
  const match = /^([0-9]{1,10})([smhdw]?)$/i.exec(text);
  if (!match) {
    return undefined;
  }
  const seconds = Number(match[1]) * TIME_UNITS[match[2]!.toLowerCase()]!;
  return seconds <= 2_147_483_647 ? seconds : undefined;
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
