/**
 * Reads the facts of one SMTP session from a stored message: the connecting client and its HELO from
 * the trusted Received hop, the envelope sender from Return-Path, the header From domain, and the
 * SPF, DKIM and DMARC results from Authentication-Results and Received-SPF.
 *
 * The trusted hop is the one the receiving border MTA recorded. In order of preference it comes from
 * `client-ip=` and `helo=` of the topmost Received-SPF, then from the Received header just below the
 * topmost Authentication-Results (the border MTA adds both), then from the topmost Received header whose
 * client address is public.
 */

import ipaddr from 'ipaddr.js';
import { simpleParser, type AddressObject } from 'mailparser';
import parseDkimHeaders from 'mailauth/lib/parse-dkim-headers.js';
import { parseReceived } from 'mailauth/lib/parse-received.js';

import { CdrError } from '../../../services/common/errors.js';
import { domainOfAddress, normaliseIp, type AuthResult } from '../session.js';

export interface MessageFacts {
  clientIp: string;
  helo: string | undefined;
  /** Where the client address came from: `received-spf`, `received-after-ar` or `received`. */
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
  const lines = (parsed.headerLines ?? []) as HeaderLine[];

  const hop = findTrustedHop(lines);
  if (!hop) {
    const received = lines.filter((line) => line.key === 'received').length;
    throw new CdrError('ERR_REPLAY_MESSAGE', `no client address: ${received} Received headers and no Received-SPF client-ip name a public address`, {
      details: { received },
    });
  }

  const auth = readAuthenticationResults(lines);
  const receivedSpf = lines.find((line) => line.key === 'received-spf');
  const spfFromReceived = receivedSpf ? classify(/^\s*([A-Za-z]+)/.exec(headerValue(receivedSpf.line))?.[1]) : undefined;

  return {
    clientIp: hop.ip,
    helo: hop.helo,
    hopSource: hop.source,
    envelopeSender: firstAddress(parsed.headers.get('return-path') as AddressObject | undefined),
    fromDomain: domainOfAddress(firstAddress(parsed.from)),
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

function firstAddress(object: AddressObject | AddressObject[] | undefined): string | undefined {
  const first = Array.isArray(object) ? object[0] : object;
  const address = first?.value?.[0]?.address?.trim();
  return address ? address : undefined;
}

interface Hop {
  ip: string;
  helo: string | undefined;
  source: MessageFacts['hopSource'];
}

function findTrustedHop(lines: HeaderLine[]): Hop | undefined {
  const receivedSpf = lines.find((line) => line.key === 'received-spf');
  if (receivedSpf) {
    const pairs = readKeyValuePairs(headerValue(receivedSpf.line));
    const ip = normaliseIp(pairs.get('client-ip') ?? '');
    if (ip) {
      return { ip, helo: pairs.get('helo'), source: 'received-spf' };
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
    if (hop && ipaddr.parse(hop.ip).range() === 'unicast') {
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

interface ResultEntry {
  value?: string;
}

/**
 * Reads the topmost Authentication-Results header, the one the border MTA added. DKIM is `pass` when any
 * signature passed, else `fail` when any failed, else `none`.
 */
function readAuthenticationResults(lines: HeaderLine[]): { spf?: AuthResult; dkim?: AuthResult; dmarc?: AuthResult; authservId?: string } | undefined {
  const header = lines.find((line) => line.key === 'authentication-results');
  if (!header) {
    return undefined;
  }
  const { parsed } = parseDkimHeaders(header.line.replace(/\r?\n[ \t]+/g, ' '));
  const pick = (method: string): ResultEntry[] => {
    const entry = parsed[method] as ResultEntry | ResultEntry[] | undefined;
    return entry === undefined ? [] : Array.isArray(entry) ? entry : [entry];
  };
  const combine = (entries: ResultEntry[]): AuthResult | undefined => {
    const classes = entries.map((entry) => classify(entry.value));
    if (classes.includes('pass')) return 'pass';
    if (classes.includes('fail')) return 'fail';
    if (classes.includes('none')) return 'none';
    return undefined;
  };
  const authservId = typeof parsed['value'] === 'string' && parsed['value'] !== '' ? parsed['value'] : undefined;
  return { spf: combine(pick('spf')), dkim: combine(pick('dkim')), dmarc: combine(pick('dmarc')), authservId };
}
