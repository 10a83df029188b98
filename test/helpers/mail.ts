/**
 * Facts the tests compute from mail files on their own, with plain regular expressions, to check the
 * replay against: the client-ip of the topmost Received-SPF header.
 */

import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

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
