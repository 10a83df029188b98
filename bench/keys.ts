/**
 * Key normalisation of IPv4 addresses, two methods in one run on the same keys. `normaliseKey('ip', …)`
 * takes a canonical dotted quad as it is. The repository's earlier method parses every address with
 * ipaddr.js, formats it, and takes the /24 from the parsed bytes.
 *
 * Keys are the PSBL and NiXSpam sender addresses that `make bench` also uses, read in place from
 * SHARED_DATA. Each method runs ROUNDS times over every key after one warm-up round; the table gives
 * the best round of each.
 */

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import ipaddr from 'ipaddr.js';

import { normaliseKey } from '../services/repository/keys.js';
import { SHARED_DATA } from '../test/helpers/node.js';

const IPV4_SOURCES = ['dnsbl/uninvitedactivity-mirror/psbl.txt', 'dnsbl/uninvitedactivity-mirror/derived/nixspam-ip.txt'];
const ROUNDS = 10;

/** Normalises an IPv4 key the earlier way: parse and format with ipaddr.js, /24 from the bytes. */
function normaliseWithIpaddr(text: string): { key: string; network: string } {
  if (!ipaddr.IPv4.isValidFourPartDecimal(text)) {
    throw new Error(`not a dotted quad: ${text}`);
  }
  const address = ipaddr.IPv4.parse(text);
  const bytes = address.toByteArray();
  bytes[3] = 0;
  return { key: address.toString(), network: `${ipaddr.fromByteArray(bytes).toString()}/24` };
}

function bestRoundMs(keys: string[], normalise: (key: string) => unknown): number {
  let best = Number.POSITIVE_INFINITY;
  for (let round = 0; round <= ROUNDS; round += 1) {
    const started = process.hrtime.bigint();
    for (const key of keys) {
      normalise(key);
    }
    const ms = Number(process.hrtime.bigint() - started) / 1e6;
    if (round > 0) {
      best = Math.min(best, ms);
    }
  }
  return best;
}

const keys = IPV4_SOURCES.flatMap((source) => readFileSync(join(SHARED_DATA, source), 'latin1').split('\n'))
  .map((line) => line.trim())
  .filter((line) => /^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(line) && line !== '0.0.0.0');

// Both methods must agree on every key before their speed means anything.
for (const key of keys) {
  const fast = normaliseKey('ip', key);
  const reference = normaliseWithIpaddr(key);
  if (fast.key !== reference.key || fast.parents[0]?.key !== reference.network) {
    throw new Error(`the methods disagree on ${key}: ${JSON.stringify(fast)} against ${JSON.stringify(reference)}`);
  }
}

const fastMs = bestRoundMs(keys, (key) => normaliseKey('ip', key));
const referenceMs = bestRoundMs(keys, normaliseWithIpaddr);
const perSecond = (ms: number) => Math.round((keys.length / ms) * 1000).toLocaleString('en-US');
process.stdout.write(
  [
    `${keys.length} IPv4 keys, best of ${ROUNDS} rounds each, Node.js ${process.version}`,
    '| Method | ms per round | keys/s |',
    '|---|---:|---:|',
    `| normaliseKey('ip') | ${fastMs.toFixed(1)} | ${perSecond(fastMs)} |`,
    `| ipaddr.js parse and format | ${referenceMs.toFixed(1)} | ${perSecond(referenceMs)} |`,
    `normaliseKey / ipaddr.js: ${(referenceMs / fastMs).toFixed(2)} times the keys per second`,
    '',
  ].join('\n'),
);
