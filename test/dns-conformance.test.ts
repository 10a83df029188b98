import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';
import pino from 'pino';

import { DnsServer } from '../services/repository/dns/dns-server.js';
import { DatasetZone } from '../services/repository/dns/zone.js';
import { formatIp4, parseIp4Cidr, parseIp6Entry, formatIp6 } from '../services/repository/feeds/ip.js';
import { parseFeed } from '../services/repository/feeds/parse.js';
import type { FeedFormat } from '../services/repository/feeds/dataset.js';
import { digBatch, startRbldnsd, type DigQuestion, type Rbldnsd } from './helpers/dns.js';
import { SHARED_DATA } from './helpers/node.js';

const DNSBL = join(SHARED_DATA, 'dnsbl', 'uninvitedactivity-mirror');
const DROP = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror');
const DOMAINS = join(SHARED_DATA, 'domains', 'disposable-email-domains');

/** Every zone file that rbldnsd and IMP-CDR both load, with the dataset type both read it as. */
const ZONES: { zone: string; type: Exclude<FeedFormat, 'dmarc' | 'iplist' | 'domainlist'>; file: string }[] = [
  { zone: 'dnsbl-1.test', type: 'ip4set', file: join(DNSBL, 'dnsbl-1.uceprotect.net') },
  { zone: 'dnsbl-2.test', type: 'ip4set', file: join(DNSBL, 'dnsbl-2.uceprotect.net') },
  { zone: 'backscatterer.test', type: 'ip4set', file: join(DNSBL, 'ips.backscatterer.org') },
  { zone: 'whitelisted.test', type: 'ip4set', file: join(DNSBL, 'ips.whitelisted.org') },
  { zone: 'psbl.test', type: 'ip4set', file: join(DNSBL, 'psbl.txt') },
  { zone: 'verified.test', type: 'ip4set', file: join(DNSBL, 'allowVerifiedMailServers.txt') },
  { zone: 'ranges.test', type: 'ip4trie', file: join(DNSBL, 'derived', 'uceprotect-2-NetworkRanges.txt') },
  { zone: 'drop.test', type: 'ip4trie', file: join(DROP, 'drop.txt') },
  { zone: 'edrop.test', type: 'ip4set', file: join(DROP, 'edrop.txt') },
  { zone: 'drop6.test', type: 'ip6trie', file: join(DROP, 'drop_ipv6.txt') },
  { zone: 'disposable.test', type: 'dnset', file: join(DOMAINS, 'disposable_email_blocklist.conf') },
];

let rbldnsd: Rbldnsd;
let server: DnsServer;

test.before(async () => {
  rbldnsd = await startRbldnsd(ZONES);
  server = new DnsServer(pino({ level: 'silent' }));
  server.setZones(ZONES.map(({ zone, type, file }) => new DatasetZone(zone, parseFeed(readFileSync(file), type, file).dataset, 2100)));
  await server.listen('127.0.0.1', 0);
});

test.after.always(async () => {
  await rbldnsd?.stop();
  await server?.close();
});

/** Deterministic pseudo-random numbers (mulberry32), so a failure repeats with the same names. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state + 0x6d2b79f5) | 0;
    let value = Math.imul(state ^ (state >>> 15), 1 | state);
    value ^= value + Math.imul(value ^ (value >>> 7), 61 | value);
    return ((value ^ (value >>> 14)) >>> 0) / 4_294_967_296;
  };
}

function reversed4(address: number, zone: string): string {
  return `${formatIp4(address).split('.').reverse().join('.')}.${zone}`;
}

function reversed6(address: bigint, zone: string): string {
  return `${address.toString(16).padStart(32, '0').split('').reverse().join('.')}.${zone}`;
}

/** Entries of a file (first field of each data line), for picking listed names and their neighbours. */
function dataEntries(file: string): string[] {
  return readFileSync(file, 'latin1')
    .split('\n')
    .map((line) => line.trim().split(/\s+/)[0] ?? '')
    .filter((entry) => entry !== '' && !/^[#;:$]/.test(entry));
}

/** Listed names, names next to them, excluded ones, random ones and the RFC 5782 test points. */
function questionsFor(zone: string, type: string, file: string, perZone: number, next: () => number): DigQuestion[] {
  const names = new Set<string>();
  const entries = dataEntries(file);
  const step = Math.max(1, Math.floor(entries.length / perZone));

  if (type === 'dnset') {
    for (let index = 0; index < entries.length; index += step) {
      const domain = entries[index]!.toLowerCase();
      names.add(`${domain}.${zone}`);
      names.add(`www.${domain}.${zone}`);
      names.add(`not-${domain}.${zone}`);
    }
  } else if (type === 'ip6trie') {
    for (const entry of entries) {
      const prefix = parseIp6Entry(entry.replace(/^!/, ''));
      if (!prefix) continue;
      names.add(reversed6(prefix.network, zone));
      names.add(reversed6(prefix.network + 1n, zone));
      names.add(reversed6(prefix.network - 1n, zone));
    }
    names.add(reversed6(1n, zone));
    names.add(reversed6(0x7f000002n, zone));
  } else {
    for (let index = 0; index < entries.length; index += step) {
      const prefix = parseIp4Cidr(entries[index]!.replace(/^!/, ''));
      if (!prefix) continue;
      const last = prefix.network + 2 ** (32 - prefix.length) - 1;
      for (const address of [prefix.network, prefix.network + 1, last, last + 1, prefix.network - 1]) {
        if (address >= 0 && address <= 0xffffffff) names.add(reversed4(address, zone));
      }
    }
    for (let count = 0; count < perZone / 4; count += 1) {
      names.add(reversed4(Math.floor(next() * 2 ** 32), zone));
    }
    names.add(reversed4(0x7f000002, zone));
    names.add(reversed4(0x7f000001, zone));
    names.add(`10.10.10.10.${zone}`);
  }
  names.add(`not-an-address.${zone}`);

  const questions: DigQuestion[] = [{ name: zone, type: 'SOA' }, { name: zone, type: 'NS' }];
  let position = 0;
  for (const name of names) {
    questions.push({ name, type: 'A' });
    if (position % 3 === 0) questions.push({ name, type: 'TXT' });
    if (position % 50 === 0) questions.push({ name, type: 'MX' });
    position += 1;
  }
  return questions;
}

function compare(t: import('ava').ExecutionContext, questions: DigQuestion[], ours: Awaited<ReturnType<typeof digBatch>>, theirs: Awaited<ReturnType<typeof digBatch>>): void {
  t.is(ours.length, questions.length, 'dig returned one answer per question from IMP-CDR');
  t.is(theirs.length, questions.length, 'dig returned one answer per question from rbldnsd');
  const mismatches: string[] = [];
  questions.forEach((question, index) => {
    const a = ours[index];
    const b = theirs[index];
    if (!a || !b || a.status !== b.status || a.answers.join('|') !== b.answers.join('|')) {
      mismatches.push(`${question.name} ${question.type}: IMP-CDR ${a?.status} [${a?.answers.join('; ')}], rbldnsd ${b?.status} [${b?.answers.join('; ')}]`);
    }
  });
  t.deepEqual(mismatches.slice(0, 10), [], `${mismatches.length} of ${questions.length} answers differ`);
}

test.serial('UDP answers match rbldnsd', async (t) => {
  const next = random(20261204);
  const questions = ZONES.flatMap(({ zone, type, file }) => questionsFor(zone, type, file, 300, next));
  t.true(questions.length >= 3000, `${questions.length} questions`);

  const [ours, theirs] = await Promise.all([digBatch(server.port, questions), digBatch(rbldnsd.port, questions)]);
  compare(t, questions, ours, theirs);

  const listed = ours.filter((result, index) => questions[index]!.type === 'A' && result.answers.length > 0).length;
  const notListed = ours.filter((result) => result.status === 'NXDOMAIN').length;
  t.true(listed >= 1000, `${listed} listed answers`);
  t.true(notListed >= 500, `${notListed} NXDOMAIN answers`);
});

test.serial('TCP answers match rbldnsd UDP', async (t) => {
  const next = random(7);
  const questions = ZONES.flatMap(({ zone, type, file }) => questionsFor(zone, type, file, 20, next));
  const [ours, theirs] = await Promise.all([digBatch(server.port, questions, true), digBatch(rbldnsd.port, questions)]);
  compare(t, questions, ours, theirs);
});

test.serial('RFC 5782 test points', async (t) => {
  const [listed, notListed] = await digBatch(server.port, [
    { name: '2.0.0.127.dnsbl-1.test', type: 'A' },
    { name: '1.0.0.127.dnsbl-1.test', type: 'A' },
  ]);
  t.is(listed!.status, 'NOERROR');
  t.deepEqual(listed!.answers, ['A 2100 127.0.0.2']);
  t.is(notListed!.status, 'NXDOMAIN');
  t.deepEqual(notListed!.answers, []);
});

test.serial('name outside every zone refused', async (t) => {
  const [result] = await digBatch(server.port, [{ name: '2.0.0.127.zen.example', type: 'A' }]);
  t.is(result!.status, 'REFUSED');
});

test('formatIp6 prints compressed form', (t) => {
  t.is(formatIp6(parseIp6Entry('2a12:2640::/29')!.network), '2a12:2640::');
});
