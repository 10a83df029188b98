/**
 * Reads the facts of one SMTP session from a stored message: the connecting client and its HELO from
 * the trusted Received hop, the envelope sender from Return-Path, the header From domain, and the
 * SPF, DKIM and DMARC results from Authentication-Results and Received-SPF. mailauth parses Received
 * headers; Authentication-Results is split here because mailauth's parser keeps one result per method.
 *
 * The trusted hop is the one the receiving border MTA recorded. In order of preference it comes from
 * `client-ip=` and `helo=` of the topmost Received-SPF, then from the Received header just below the
 * topmost Authentication-Results (the border MTA adds both), then from the topmost Received header whose
 * client address is not private, loopback, link-local, unique-local or carrier-grade NAT.
 */

import ipaddr from 'ipaddr.js';
import { simpleParser, type AddressObject } from 'mailparser';
import { parseReceived } from 'mailauth/lib/parse-received.js';

import { CdrError } from '../../../services/common/errors.js';
import { domainOfAddress, normaliseIp, type AuthResult } from '../session.js';

export interface MessageFacts {
  clientIp: string;
  helo: string | undefined;
  /** Source of the client address: `received-spf`, `received-after-ar` or `received`. */
  hopSource: 'received-spf' | 'received-after-ar' | 'received';
  /** Envelope sender from Return-Path; undefined for the null sender or a missing header. */
  envelopeSender: string | undefined;
  fromDomain: string | undefined;
  spf: AuthResult | undefined;
  dkim: AuthResult | undefined;
  dmarc: AuthResult | undefined;
  /** The authserv-id of the Authentication-Results used; undefined when it has none (Office 365 writes none). */
  authservId: string | undefined;
}

interface HeaderLine {
  key: string;
  line: string;
}

/**
 * Parses `raw` and returns the session facts.
 *
 * @throws CdrError `ERR_REPLAY_MESSAGE` when no Received hop or Received-SPF names a client address.
 */
export async function readMessageFacts(raw: Buffer): Promise<MessageFacts> {
  const parsed = await simpleParser(raw, { skipHtmlToText: true, skipTextToHtml: true, skipImageLinks: true, skipTextLinks: true });
  const lines = ((parsed.headerLines ?? []) as HeaderLine[]).map((line) => ({ key: line.key.trim().toLowerCase(), line: line.line }));
  // mailparser drops a header with space before the colon ("From :"), so it is read from the raw block.
  const fromLine = lines.find((line) => line.key === 'from')?.line ?? rawHeaderLine(raw, 'from');

  const hop = findTrustedHop(lines);
  if (!hop) {
    const received = lines.filter((line) => line.key === 'received').length;
    throw new CdrError('ERR_REPLAY_MESSAGE', `no client address: ${received} Received headers and no Received-SPF client-ip name an address outside private ranges`, {
      details: { received },
    });
  }

  const arHeader = lines.find((line) => line.key === 'authentication-results');
  const auth = arHeader ? readAuthenticationResults(arHeader.line) : undefined;
  const receivedSpf = lines.find((line) => line.key === 'received-spf');
  const spfFromReceived = receivedSpf ? readReceivedSpf(receivedSpf.line).result : undefined;

  return {
    clientIp: hop.ip,
    helo: hop.helo,
    hopSource: hop.source,
    envelopeSender: firstAddress(parsed.headers.get('return-path') as AddressObject | undefined),
    fromDomain: domainOfAddress(angleAddress(fromLine) ?? firstAddress(parsed.from) ?? bareAddress(fromLine)),
    spf: auth?.spf ?? spfFromReceived,
    dkim: auth?.dkim,
    dmarc: auth?.dmarc,
    authservId: auth?.authservId,
  };
}

/** Returns the value of a raw header line: everything after the first colon, unfolded. */
function headerValue(line: string): string {
  return line.slice(line.indexOf(':') + 1).replace(/\r?\n[ \t]+/g, ' ').trim();
}

/**
 * Returns the first address in angle brackets of a raw header line. Phishing writes a decoy address as
 * the display name (`"promo@brand.example", <real@sender.example>`), and address parsers take it for a
 * second address. The receiving MTA's DMARC check uses the one in angle brackets.
 */
function angleAddress(line: string | undefined): string | undefined {
  const match = /<([^<>\s@]+@[^<>\s@]+)>/.exec(line ?? '');
  return match?.[1];
}

/** Returns the first header `name`, unfolded, from the raw header block; RFC 5322 obsolete syntax allows space before its colon. */
function rawHeaderLine(raw: Buffer, name: string): string | undefined {
  const text = raw.toString('latin1');
  const end = text.search(/\r?\n\r?\n/);
  const block = (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
  return block.split(/\r?\n/).find((line) => new RegExp(`^${name}[ \\t]*:`, 'i').test(line));
}

/** Returns the first bare address of a raw header line, for headers the parser did not recognise. */
function bareAddress(line: string | undefined): string | undefined {
  const value = line === undefined ? '' : headerValue(line);
  return /([^\s<>"@]+@[^\s<>"@]+)/.exec(value)?.[1];
}

/**
 * Returns the first entry that contains an address. An unquoted comma in a display name ("Team, Support
 * <a@example.com>", common in phishing) makes the parser see a name-only entry first.
 */
function firstAddress(object: AddressObject | AddressObject[] | undefined): string | undefined {
  const objects = object === undefined ? [] : Array.isArray(object) ? object : [object];
  for (const entry of objects.flatMap((item) => item.value ?? [])) {
    const address = entry.address?.trim();
    if (address && address.includes('@')) {
      return address;
    }
  }
  return undefined;
}

/** ipaddr.js ranges of addresses that a hop inside the receiving site or a client's LAN uses. */
const INTERNAL_RANGES = new Set(['private', 'loopback', 'linkLocal', 'uniqueLocal', 'unspecified', 'carrierGradeNat']);

interface Hop {
  ip: string;
  helo: string | undefined;
  source: MessageFacts['hopSource'];
}

function findTrustedHop(lines: HeaderLine[]): Hop | undefined {
  const receivedSpf = lines.find((line) => line.key === 'received-spf');
  if (receivedSpf) {
    const { clientIp, helo } = readReceivedSpf(receivedSpf.line);
    if (clientIp) {
      return { ip: clientIp, helo, source: 'received-spf' };
    }
  }

  const arIndex = lines.findIndex((line) => line.key === 'authentication-results');
  if (arIndex >= 0) {
    const below = lines.slice(arIndex + 1).find((line) => line.key === 'received');
    const hop = below ? readReceivedHop(below.line) : undefined;
    if (hop) {
      return { ...hop, source: 'received-after-ar' };
    }
  }

  for (const line of lines) {
    if (line.key !== 'received') {
      continue;
    }
    const hop = readReceivedHop(line.line);
    if (hop && !INTERNAL_RANGES.has(ipaddr.parse(hop.ip).range())) {
      return { ...hop, source: 'received' };
    }
  }
  return undefined;
}

/**
 * Reads the client address and HELO of one Received header. The address is taken from the `from`
 * clause's comment, where MTAs write it as `[192.0.2.1]`, `[IPv6:2001:db8::1]`, `(2001:db8::1)` or
 * `host (192.0.2.1)`.
 */
function readReceivedHop(line: string): { ip: string; helo: string | undefined } | undefined {
  const unfolded = line.replace(/\r?\n[ \t]+/g, ' ');
  const parsed = parseReceived(unfolded);
  if (!parsed || typeof parsed['from'] !== 'object' || parsed['from'] === undefined) {
    return undefined;
  }
  const from = parsed['from'];
  const candidates = `${from.comment ?? ''} ${from.value}`.match(/\[(?:IPv6:)?[0-9A-Fa-f:.]+\]|[0-9A-Fa-f:.]*[:.][0-9A-Fa-f:.]+/g) ?? [];
  for (const candidate of candidates) {
    const ip = normaliseIp(candidate);
    if (ip) {
      const helo = from.value.startsWith('[') ? undefined : from.value;
      return { ip, helo };
    }
  }
  return undefined;
}

/** Reads the result, `client-ip` (normalised) and `helo` of one Received-SPF header line ("Received-SPF: ..."). */
export function readReceivedSpf(line: string): { result: AuthResult | undefined; clientIp: string | undefined; helo: string | undefined } {
  const value = headerValue(line);
  const pairs = readKeyValuePairs(value);
  return {
    result: classify(/^\s*([A-Za-z]+)/.exec(value)?.[1]),
    clientIp: normaliseIp(pairs.get('client-ip') ?? ''),
    helo: pairs.get('helo'),
  };
}

/** Reads `key=value` pairs, with quoted values, from a Received-SPF value after its result and comment. */
function readKeyValuePairs(value: string): Map<string, string> {
  const pairs = new Map<string, string>();
  const pattern = /([A-Za-z-]+)=("(?:[^"\\]|\\.)*"|[^;\s]+)/g;
  for (const match of value.replace(/\((?:[^()]|\([^()]*\))*\)/g, ' ').matchAll(pattern)) {
    const raw = match[2]!;
    pairs.set(match[1]!.toLowerCase(), raw.startsWith('"') ? raw.slice(1, -1).replace(/\\(.)/g, '$1') : raw.replace(/;$/, ''));
  }
  return pairs;
}

/** Maps an RFC 8601 result to the three counted classes. */
function classify(result: string | undefined): AuthResult | undefined {
  switch (result?.toLowerCase()) {
    case 'pass':
      return 'pass';
    case 'fail':
    case 'softfail':
    case 'permerror':
      return 'fail';
    case 'none':
    case 'neutral':
    case 'temperror':
    case 'policy':
      return 'none';
    default:
      return undefined;
  }
}

export interface AuthenticationResults {
  spf: AuthResult | undefined;
  dkim: AuthResult | undefined;
  dmarc: AuthResult | undefined;
  /** Undefined when the header starts with a result instead of an authserv-id, as Office 365 writes it. */
  authservId: string | undefined;
}

/**
 * Reads one Authentication-Results header line ("Authentication-Results: ..."), folded or not. The
 * message uses its topmost one, which the border MTA added. A method that appears several times (DKIM
 * with several signatures, DMARC for several From domains) is `pass` when any result passed, else `fail`
 * when any failed, else `none`.
 */
export function readAuthenticationResults(line: string): AuthenticationResults {
  const segments = splitResinfo(headerValue(line));
  const results = new Map<string, AuthResult[]>();
  let authservId: string | undefined;

  segments.forEach((segment, index) => {
    const method = /^([A-Za-z0-9_-]+)\s*(?:\/\s*[0-9]+\s*)?=\s*([A-Za-z]+)/.exec(segment);
    if (!method) {
      // Only the first segment may be the authserv-id, optionally followed by a version number.
      if (index === 0 && segment !== '' && segment.toLowerCase() !== 'none') {
        authservId = segment.split(/\s+/)[0];
      }
      return;
    }
    const name = method[1]!.toLowerCase();
    const result = classify(method[2]);
    if (result) {
      results.set(name, [...(results.get(name) ?? []), result]);
    }
  });

  const combine = (classes: AuthResult[] | undefined): AuthResult | undefined => {
    if (!classes) return undefined;
    if (classes.includes('pass')) return 'pass';
    if (classes.includes('fail')) return 'fail';
    return 'none';
  };
  return { spf: combine(results.get('spf')), dkim: combine(results.get('dkim')), dmarc: combine(results.get('dmarc')), authservId };
}

/**
 * Splits an Authentication-Results value at the semicolons that separate the authserv-id and each
 * result (RFC 8601), ignoring semicolons inside comments, which nest, and inside quoted strings. The
 * comments are removed from the returned segments.
 */
function splitResinfo(value: string): string[] {
  const segments: string[] = [];
  let current = '';
  let depth = 0;
  let quoted = false;

  for (let index = 0; index < value.length; index += 1) {
    const character = value[index]!;
    if (quoted) {
      current += character;
      if (character === '\\') {
        current += value[index + 1] ?? '';
        index += 1;
      } else if (character === '"') {
        quoted = false;
      }
      continue;
    }
    if (depth > 0) {
      if (character === '\\') index += 1;
      else if (character === '(') depth += 1;
      else if (character === ')') depth -= 1;
      continue;
    }
    if (character === '(') {
      depth = 1;
      current += ' ';
    } else if (character === '"') {
      quoted = true;
      current += character;
    } else if (character === ';') {
      segments.push(current.trim());
      current = '';
    } else {
      current += character;
    }
  }
  segments.push(current.trim());
  return segments.filter((segment, index) => segment !== '' || index === 0);
}
