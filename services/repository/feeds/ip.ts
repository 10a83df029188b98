/**
 * IPv4 and IPv6 address and prefix parsing as rbldnsd datasets and plain lists write them.
 *
 * IPv4 addresses are unsigned 32-bit numbers and IPv6 addresses 128-bit bigints, so that a prefix is
 * a pair (network, length) with the host bits cleared.
 */

import ipaddr from 'ipaddr.js';

/** One IPv4 prefix: `network` has its host bits cleared. */
export interface Ip4Prefix {
  network: number;
  length: number;
}

/** One IPv6 prefix: `network` has its host bits cleared. */
export interface Ip6Prefix {
  network: bigint;
  length: number;
}

const OCTET = /^(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])$/;

/** Returns the netmask of an IPv4 prefix length as an unsigned number. */
export function ip4Mask(length: number): number {
  return length === 0 ? 0 : (0xffffffff << (32 - length)) >>> 0;
}

/** Returns the netmask of an IPv6 prefix length. */
export function ip6Mask(length: number): bigint {
  return length === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - length)) - 1n);
}

/** Parses a dotted IPv4 address of exactly four octets, or returns undefined. */
export function parseIp4(text: string): number | undefined {
  const octets = text.split('.');
  if (octets.length !== 4 || !octets.every((octet) => OCTET.test(octet))) {
    return undefined;
  }
  return octets.reduce((value, octet) => value * 256 + Number(octet), 0);
}

export function formatIp4(value: number): string {
  return [value >>> 24, (value >>> 16) & 255, (value >>> 8) & 255, value & 255].join('.');
}

/** Parses 1 to 4 octets (rbldnsd's "prefix" form, `127.0.0` is 127.0.0.0/24) into value and octet count. */
function parseOctets(text: string): { value: number; count: number } | undefined {
  const octets = text.split('.');
  if (octets.length < 1 || octets.length > 4 || !octets.every((octet) => OCTET.test(octet))) {
    return undefined;
  }
  let value = 0;
  for (let index = 0; index < 4; index += 1) {
    value = value * 256 + Number(octets[index] ?? 0);
  }
  return { value, count: octets.length };
}

/**
 * Parses an IPv4 entry as rbldnsd's ip4set reads it: a full address, an octet prefix (`127.0.0`), a
 * CIDR (`127.0.0.0/24`, `127/8`), or an inclusive range (`127.0.0.1-127.0.0.9`, `127.0.0.1-9`).
 * Returns the prefixes that cover exactly that set, or undefined when `text` is none of these.
 * Host bits set in a CIDR are cleared, as rbldnsd does.
 */
export function parseIp4Entry(text: string): Ip4Prefix[] | undefined {
  const dash = text.indexOf('-');
  if (dash >= 0) {
    return parseIp4Range(text.slice(0, dash), text.slice(dash + 1));
  }

  const slash = text.indexOf('/');
  const address = parseOctets(slash >= 0 ? text.slice(0, slash) : text);
  if (!address) {
    return undefined;
  }
  let length = address.count * 8;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^[0-9]{1,2}$/.test(lengthText) || Number(lengthText) > 32) {
      return undefined;
    }
    length = Number(lengthText);
  }
  return [{ network: (address.value & ip4Mask(length)) >>> 0, length }];
}

function parseIp4Range(startText: string, endText: string): Ip4Prefix[] | undefined {
  const start = parseOctets(startText);
  if (!start) {
    return undefined;
  }

  let end: number;
  const endOctets = endText.split('.');
  if (endOctets.length === 1 && start.count > 1) {
    // A single octet replaces the last octet written in the start: 127.16-31 is 127.16.0.0-127.31.255.255.
    if (!OCTET.test(endText)) {
      return undefined;
    }
    const shift = (4 - start.count) * 8;
    const replaced = (start.value & ~(255 * 2 ** shift)) >>> 0;
    end = replaced + Number(endText) * 2 ** shift + (2 ** shift - 1);
  } else {
    const parsed = parseOctets(endText);
    if (!parsed) {
      return undefined;
    }
    end = parsed.value + (2 ** ((4 - parsed.count) * 8) - 1);
  }
  if (end < start.value) {
    return undefined;
  }
  return rangeToPrefixes(start.value, end);
}

/** Splits an inclusive IPv4 range into the fewest prefixes that cover it. */
export function rangeToPrefixes(first: number, last: number): Ip4Prefix[] {
  const prefixes: Ip4Prefix[] = [];
  let current = first;
  while (current <= last) {
    let length = 32;
    while (length > 0) {
      const size = 2 ** (32 - (length - 1));
      if (current % size !== 0 || current + size - 1 > last) {
        break;
      }
      length -= 1;
    }
    prefixes.push({ network: current, length });
    current += 2 ** (32 - length);
  }
  return prefixes;
}

/** Parses an IPv4 CIDR or full address (`/32` implied), as ip4trie and plain lists write them. */
export function parseIp4Cidr(text: string): Ip4Prefix | undefined {
  const slash = text.indexOf('/');
  const address = parseIp4(slash >= 0 ? text.slice(0, slash) : text);
  if (address === undefined) {
    return undefined;
  }
  let length = 32;
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^[0-9]{1,2}$/.test(lengthText) || Number(lengthText) > 32) {
      return undefined;
    }
    length = Number(lengthText);
  }
  return { network: (address & ip4Mask(length)) >>> 0, length };
}

/** Converts an ipaddr.js IPv6 address to a bigint. */
export function ip6ToBigInt(address: ipaddr.IPv6): bigint {
  return address.parts.reduce((value, part) => (value << 16n) | BigInt(part), 0n);
}

export function formatIp6(value: bigint): string {
  const parts: number[] = [];
  for (let index = 7; index >= 0; index -= 1) {
    parts.push(Number((value >> BigInt(index * 16)) & 0xffffn));
  }
  return new ipaddr.IPv6(parts).toString();
}

/**
 * Parses an IPv6 entry: compressed or full notation, with an optional `/length`. Without a length,
 * rbldnsd's ip6trie reads trailing omitted groups as zeros and the length as the groups written times
 * 16 (`2001:21ab:def7:4242` is a /64); an address with `::` is a /128.
 */
export function parseIp6Entry(text: string): Ip6Prefix | undefined {
  const slash = text.indexOf('/');
  let addressText = slash >= 0 ? text.slice(0, slash) : text;
  let length = 128;

  if (!addressText.includes('::')) {
    const groups = addressText.split(':');
    if (groups.length < 1 || groups.length > 8 || !groups.every((group) => /^[0-9a-fA-F]{1,4}$/.test(group))) {
      return undefined;
    }
    if (groups.length < 8) {
      length = groups.length * 16;
      addressText = groups.length === 7 ? `${addressText}:0` : `${addressText}::`;
    }
  }
  if (!ipaddr.IPv6.isValid(addressText)) {
    return undefined;
  }
  if (slash >= 0) {
    const lengthText = text.slice(slash + 1);
    if (!/^[0-9]{1,3}$/.test(lengthText) || Number(lengthText) > 128) {
      return undefined;
    }
    length = Number(lengthText);
  }
  const value = ip6ToBigInt(ipaddr.IPv6.parse(addressText));
  return { network: value & ip6Mask(length), length };
}

/** Parses the reversed name of a DNSBL query (`4.3.2.1` for 1.2.3.4), or returns undefined. */
export function parseReversedIp4(labels: string[]): number | undefined {
  if (labels.length !== 4) {
    return undefined;
  }
  return parseIp4([...labels].reverse().join('.'));
}

/** Parses 32 reversed nibble labels (RFC 5782 section 2.4), or returns undefined. */
export function parseReversedIp6(labels: string[]): bigint | undefined {
  if (labels.length !== 32 || !labels.every((label) => /^[0-9a-fA-F]$/.test(label))) {
    return undefined;
  }
  return BigInt(`0x${[...labels].reverse().join('')}`);
}
