/**
 * Facts the tests compute from mail files on their own, with plain regular expressions, to check the
 * replay against: the trusted hop's client address and the sender domains.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { join } from 'node:path';

import ipaddr from 'ipaddr.js';

/** Returns the unfolded header block of a message. */
export function headerBlock(path: string): string {
  const text = readFileSync(path, 'latin1');
  const end = text.search(/\r?\n\r?\n/);
  return (end < 0 ? text : text.slice(0, end)).replace(/\r?\n[ \t]+/g, ' ');
}

/** Returns the client-ip of the first Received-SPF header, or undefined. */
export function receivedSpfClientIp(path: string): string | undefined {
  const header = headerBlock(path)
    .split(/\r?\n/)
    .find((line) => /^received-spf:/i.test(line));
  return header ? /client-ip=([0-9A-Fa-f:.]+)/.exec(header)?.[1] : undefined;
}

/** Lists the files of `folder`, sorted, whose Received-SPF names a client-ip, with that address. */
export function filesWithClientIp(folder: string): { path: string; ip: string }[] {
  return readdirSync(folder)
    .sort()
    .map((name) => ({ path: join(folder, name), ip: receivedSpfClientIp(join(folder, name)) }))
    .filter((entry): entry is { path: string; ip: string } => entry.ip !== undefined);
}

/** Counts entries per IP address. */
export function countByIp(entries: { ip: string }[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const { ip } of entries) {
    counts.set(ip, (counts.get(ip) ?? 0) + 1);
  }
  return counts;
}

interface Header {
  name: string;
  value: string;
}

function headers(path: string): Header[] {
  return headerBlock(path)
    .split(/\r?\n/)
    .filter((line) => line.includes(':'))
    .map((line) => ({ name: line.slice(0, line.indexOf(':')).trim().toLowerCase(), value: line.slice(line.indexOf(':') + 1) }));
}

/**
 * Returns the client address of a Received header's `from` clause: first one the MTA wrote after the
 * HELO name, then the HELO name itself when it is an address literal.
 */
function addressInFromClause(value: string): string | undefined {
  const clause = /^\s*from\s+(.*?)(?:\s+by\s|$)/is.exec(value)?.[1] ?? '';
  const helo = clause.split(/\s+/)[0] ?? '';
  const from = `${clause.slice(helo.length)} ${helo}`;
  for (const match of from.matchAll(/\[(?:IPv6:)?([^\]]+)\]|\(([0-9A-Fa-f:.]+)\)/gi)) {
    const candidate = match[1] ?? match[2]!;
    if (isIP(candidate) !== 0) {
      return ipaddr.process(candidate).toString();
    }
  }
  return undefined;
}

/**
 * Returns the client address of the trusted hop: Received-SPF client-ip, else the Received header below
 * the first Authentication-Results, else the first Received header with an address outside private,
 * loopback and link-local ranges.
 */
export function trustedClientIp(path: string): string | undefined {
  const all = headers(path);
  const spf = all.find((header) => header.name === 'received-spf');
  const spfIp = spf ? /client-ip=([0-9A-Fa-f:.]+)/.exec(spf.value)?.[1] : undefined;
  if (spfIp && isIP(spfIp) !== 0) {
    return ipaddr.process(spfIp).toString();
  }
  const arIndex = all.findIndex((header) => header.name === 'authentication-results');
  if (arIndex >= 0) {
    const below = all.slice(arIndex + 1).find((header) => header.name === 'received');
    const address = below ? addressInFromClause(below.value) : undefined;
    if (address) {
      return address;
    }
  }
  for (const header of all) {
    const address = header.name === 'received' ? addressInFromClause(header.value) : undefined;
    if (address && !['private', 'loopback', 'linkLocal', 'uniqueLocal', 'unspecified', 'carrierGradeNat'].includes(ipaddr.parse(address).range())) {
      return address;
    }
  }
  return undefined;
}

/** Returns the distinct domains of the Return-Path and From addresses, lower-cased. */
export function senderDomains(path: string): string[] {
  const all = headers(path);
  const domains = new Set<string>();
  for (const name of ['return-path', 'from']) {
    const value = all.find((header) => header.name === name)?.value ?? '';
    const address = /<([^<>\s]+@[^<>\s]+)>/.exec(value)?.[1] ?? /([^\s<>"]+@[^\s<>"]+)/.exec(value)?.[1];
    const domain = address?.slice(address.lastIndexOf('@') + 1).toLowerCase().replace(/\.$/, '');
    if (domain) {
      domains.add(domain);
    }
  }
  return [...domains];
}
