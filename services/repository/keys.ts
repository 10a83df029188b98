/**
 * Normalisation of object keys, so that every spelling of one address, network, domain or mailbox
 * reaches the same index entry.
 */

import { domainToASCII } from 'node:url';

import ipaddr from 'ipaddr.js';
import { getDomain } from 'tldts';

import { CdrError } from '../common/errors.js';
import type { ObjectKindName } from '../../modules/protocol/constants.js';

/** Prefix length that IPv4 observations are aggregated at. */
export const IPV4_NETWORK_PREFIX = 24;
/** Prefix length that IPv6 observations are aggregated at. */
export const IPV6_NETWORK_PREFIX = 64;

/** Maximum length of a key as received, in characters, before any parsing. */
export const MAX_RAW_KEY_LENGTH = 512;

/** A normalised key: the entry it names and the wider entries its observations also count towards. */
export interface NormalisedKey {
  kind: ObjectKindName;
  key: string;
  /** Aggregates: an address's network, a subdomain's registrable domain. */
  parents: { kind: ObjectKindName; key: string }[];
}

/**
 * Normalises `raw` as a key of `kind`.
 *
 * - `ip`: canonical IPv4 dotted quad or RFC 5952 IPv6; IPv4-mapped IPv6 becomes IPv4. Its parent is
 *   the /24 or /64 network.
 * - `network`: CIDR with host bits cleared; a prefix longer than /24 or /64 (or a bare address) is
 *   widened to it.
 * - `domain`: lower case, IDNA (punycode) form, no trailing dot, with a registrable domain under the
 *   Public Suffix List (private section included). Its parent is that registrable domain when different.
 * - `user`: `local@domain` with the local part lower-cased and the domain normalised as above.
 *
 * @throws CdrError `ERR_KEY_INVALID` with `details.kind` and `details.key`
 */
export function normaliseKey(kind: ObjectKindName, raw: string): NormalisedKey {
  if (typeof raw !== 'string' || raw.length === 0 || raw.length > MAX_RAW_KEY_LENGTH) {
    throw invalid(kind, String(raw).slice(0, 64), `must be 1 to ${MAX_RAW_KEY_LENGTH} characters`);
  }
  const trimmed = raw.trim();

  switch (kind) {
    case 'ip':
      return normaliseIp(trimmed);
    case 'network':
      return normaliseNetwork(trimmed);
    case 'domain':
      return normaliseDomainKey(trimmed);
    case 'user':
      return normaliseUser(trimmed);
  }
}

/** One decimal octet without leading zeros, 0 to 255. */
const OCTET = '(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])';
/** An IPv4 address already in canonical dotted-quad form. */
const CANONICAL_IPV4 = new RegExp(`^${OCTET}\\.${OCTET}\\.${OCTET}\\.${OCTET}$`);

function normaliseIp(raw: string): NormalisedKey {
  // Most keys arrive as canonical dotted quads; they are their own normal form, and their /24 follows
  // from the text. Parsing with ipaddr.js is the costliest step of a cached lookup.
  const quad = CANONICAL_IPV4.exec(raw);
  if (quad) {
    return { kind: 'ip', key: raw, parents: [{ kind: 'network', key: `${quad[1]}.${quad[2]}.${quad[3]}.0/${IPV4_NETWORK_PREFIX}` }] };
  }
  const address = parseAddress(raw, 'ip');
  const key = address.kind() === 'ipv4' ? address.toString() : (address as ipaddr.IPv6).toRFC5952String();
  return { kind: 'ip', key, parents: [{ kind: 'network', key: networkOf(address, maxPrefix(address)) }] };
}

function normaliseNetwork(raw: string): NormalisedKey {
  const slash = raw.indexOf('/');
  const addressText = slash < 0 ? raw : raw.slice(0, slash);
  const prefixText = slash < 0 ? undefined : raw.slice(slash + 1);

  const address = parseAddress(addressText, 'network', raw);
  let prefix: number;
  if (prefixText === undefined) {
    prefix = maxPrefix(address);
  } else {
    if (!/^[0-9]{1,3}$/.test(prefixText)) {
      throw invalid('network', raw, 'prefix length must be a number');
    }
    prefix = Number(prefixText);
  }

  const originalFamily = ipaddr.parse(addressText.replace(/^\[|\]$/g, '')).kind();
  if (originalFamily === 'ipv6' && address.kind() === 'ipv4') {
    // An IPv4-mapped IPv6 prefix names IPv4 space: ::ffff:0:0/96 covers all of it.
    if (prefixText !== undefined && prefix < 96) {
      throw invalid('network', raw, 'an IPv4-mapped prefix must be /96 or longer');
    }
    prefix = prefixText === undefined ? maxPrefix(address) : prefix - 96;
  }

  const limit = address.kind() === 'ipv4' ? 32 : 128;
  if (prefix > limit) {
    throw invalid('network', raw, `prefix length must be 0 to ${limit}`);
  }

  return { kind: 'network', key: networkOf(address, Math.min(prefix, maxPrefix(address))), parents: [] };
}

function normaliseDomainKey(raw: string): NormalisedKey {
  const { domain, registrable } = normaliseDomain(raw, 'domain', raw);
  const parents = registrable === domain ? [] : [{ kind: 'domain' as const, key: registrable }];
  return { kind: 'domain', key: domain, parents };
}

function normaliseUser(raw: string): NormalisedKey {
  const at = raw.lastIndexOf('@');
  if (at <= 0 || at === raw.length - 1) {
    throw invalid('user', raw, 'must be local-part@domain');
  }

  const local = raw.slice(0, at);
  if (local.length > 64) {
    throw invalid('user', raw, 'local part must be at most 64 characters');
  }
  // Control characters, spaces and specials (RFC 5322) are rejected; quoted local parts are not accepted.
  if (/[\s\u0000-\u001f\u007f<>()\[\],;:\\@"]/.test(local) || local.startsWith('.') || local.endsWith('.') || local.includes('..')) {
    throw invalid('user', raw, 'local part contains a character that is not allowed');
  }

  const { domain } = normaliseDomain(raw.slice(at + 1), 'user', raw);
  return { kind: 'user', key: `${local.toLowerCase()}@${domain}`, parents: [] };
}

/**
 * Normalises a domain name to lower-case IDNA form and finds its registrable domain.
 *
 * @throws CdrError `ERR_KEY_INVALID` for syntax errors, IP literals and names that are only a public suffix
 */
export function normaliseDomain(
  raw: string,
  kind: ObjectKindName = 'domain',
  original: string = raw,
): { domain: string; registrable: string } {
  const withoutDot = raw.endsWith('.') ? raw.slice(0, -1) : raw;
  if (withoutDot.length === 0 || /[\s/@:]/.test(withoutDot)) {
    throw invalid(kind, original, 'is not a domain name');
  }

  const ascii = domainToASCII(withoutDot).toLowerCase();
  if (ascii === '' || ascii.length > 253) {
    throw invalid(kind, original, 'is not a valid domain name');
  }
  const labels = ascii.split('.');
  for (const label of labels) {
    if (label.length === 0 || label.length > 63 || !/^[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?$/.test(label)) {
      throw invalid(kind, original, `label "${label}" is not a valid DNS label`);
    }
  }
  if (ipaddr.isValid(ascii)) {
    throw invalid(kind, original, 'is an IP address, not a domain name');
  }

  const registrable = getDomain(ascii, { allowPrivateDomains: true });
  if (!registrable) {
    throw invalid(kind, original, 'has no registrable domain under the Public Suffix List');
  }
  return { domain: ascii, registrable };
}

function parseAddress(raw: string, kind: ObjectKindName, original: string = raw): ipaddr.IPv4 | ipaddr.IPv6 {
  const text = raw.replace(/^\[|\]$/g, '');
  if (text.includes('%')) {
    throw invalid(kind, original, 'zone ids are not allowed');
  }

  let address: ipaddr.IPv4 | ipaddr.IPv6;
  if (text.includes(':')) {
    if (!ipaddr.IPv6.isValid(text)) {
      throw invalid(kind, original, 'is not an IPv6 address');
    }
    address = ipaddr.IPv6.parse(text);
    if (address.isIPv4MappedAddress()) {
      address = address.toIPv4Address();
    }
  } else {
    // Only the four-part dotted decimal form: "127.1" and "0x7f.0.0.1" are not accepted.
    if (!ipaddr.IPv4.isValidFourPartDecimal(text)) {
      throw invalid(kind, original, 'is not a dotted-quad IPv4 address');
    }
    address = ipaddr.IPv4.parse(text);
  }
  return address;
}

function maxPrefix(address: ipaddr.IPv4 | ipaddr.IPv6): number {
  return address.kind() === 'ipv4' ? IPV4_NETWORK_PREFIX : IPV6_NETWORK_PREFIX;
}

/** Formats the network of `address` with `prefix` bits, host bits cleared. */
function networkOf(address: ipaddr.IPv4 | ipaddr.IPv6, prefix: number): string {
  const bytes = address.toByteArray();
  for (let bit = prefix; bit < bytes.length * 8; bit++) {
    bytes[bit >> 3]! &= ~(0x80 >> (bit & 7));
  }
  const network = ipaddr.fromByteArray(bytes);
  const text = network.kind() === 'ipv4' ? network.toString() : (network as ipaddr.IPv6).toRFC5952String();
  return `${text}/${prefix}`;
}

function invalid(kind: ObjectKindName, key: string, reason: string): CdrError {
  return new CdrError('ERR_KEY_INVALID', `invalid ${kind} key "${key}": ${reason}`, { details: { kind, key } });
}
