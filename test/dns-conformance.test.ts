import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import pino from 'pino';

import { DnsServer } from '../services/repository/dns/dns-server.js';
import { feedZones } from '../services/repository/dns/zone.js';
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

/** Every syntax form of the rbldnsd man page, written into the scratch folder for both servers. */
const SYNTAX_ZONES: Record<string, { type: 'ip4set' | 'ip4trie' | 'ip6trie' | 'dnset' | 'combined'; text: string; names: string[] }> = {
  'combined-syntax.test': {
    type: 'combined',
    text: [
      '$NS 1w ns1.ex.test ns2.ex.test',
      '$SOA 1w ns1.ex.test admin.ex.test 5 2h 2h 1w 1h',
      '$TTL 900',
      '$DATASET ip4set:proxy proxies @',
      ':2:Open proxy, see http://bl.ex.test/proxy/$',
      '127.0.0.2',
      '127.0.0.10',
      '$DATASET ip4set:relay relays @',
      ':3:Open relay, see http://bl.ex.test/relay/$',
      '127.0.0.2',
      '127.0.2.10',
      '$DATASET ip4set:multihop-relay multihop',
      ':4:Multihop open relay, see http://bl.ex.test/relay/$',
      '127.0.0.2',
      '127.0.9.12',
      '$DATASET dnset:domains names',
      'spam.example :5:Domain $',
      '',
    ].join('\n'),
    names: [
      ...['127.0.0.2', '127.0.0.10', '127.0.2.10', '127.0.9.12', '127.0.0.3'].flatMap((address) => {
        const reversed = address.split('.').reverse().join('.');
        return [reversed, `${reversed}.proxies`, `${reversed}.relays`, `${reversed}.multihop`];
      }),
      'spam.example.names',
      'other.example.names',
      'proxies',
      'relays',
    ],
  },
  'ip4set-syntax.test': {
    type: 'ip4set',
    text: [
      '$SOA 1h ns.syntax.test hostmaster.syntax.test 7 2h 1h 1w 5m',
      '$NS 1d ns1.syntax.test ns2.syntax.test',
      '$TTL 300',
      '$1 See http://bl.example/lookup',
      ':127.0.0.2:IP address $ is listed. $1?ip=$',
      '10.0.0',
      '10.1/16',
      '10.2.0.1-10.2.0.9',
      '10.3.16-31',
      '10.4.0.5 :5',
      '10.4.0.6 :6:',
      '10.4.0.7 IP address $ runs an open relay, costs $$5',
      '10.4.0.8 :127.0.0.8:Own A and TXT for $',
      '10.5.0.0/20',
      '!10.5.1.1',
      '10.6.0.0/22 first entry',
      '10.6.1.0/24 second entry',
      '10.7.0.1 # a comment after the address',
      '10.8.0.1 ; another comment',
      '',
    ].join('\n'),
    names: ['10.0.0.7', '10.0.1.7', '10.1.200.3', '10.2.0.1', '10.2.0.9', '10.2.0.10', '10.3.16.0', '10.3.31.255', '10.3.32.0', '10.4.0.5', '10.4.0.6', '10.4.0.7', '10.4.0.8', '10.5.1.1', '10.5.1.2', '10.5.15.255', '10.6.1.9', '10.6.2.9', '10.7.0.1', '10.8.0.1', '10.9.0.1']
      .map((address) => address.split('.').reverse().join('.')),
  },
  'ip4trie-syntax.test': {
    type: 'ip4trie',
    text: ['$TTL 60', ':3:trie $', '172.16.0.0/12', '172.16.5.0/24 :4:narrower $', '!172.16.5.5', '1.0.0.0/8 :9:', ''].join('\n'),
    names: ['172.16.0.1', '172.16.5.1', '172.16.5.5', '172.31.255.255', '172.32.0.1', '1.2.3.4', '200.1.1.1'].map((address) => address.split('.').reverse().join('.')),
  },
  'ip6trie-syntax.test': {
    type: 'ip6trie',
    text: [':127.0.1.2: Listed, see http://example.com/lookup?$', '2001:21ab:c000/36', '2001:21ab:def7:4242 :127.0.1.3: This one smells funny', '2605:6001:42::/52', '::1', '!2605:6001:42::bead', ''].join('\n'),
    names: [0x200121abc0000000n << 64n, (0x200121abc0000000n << 64n) + 77n, 0x200121abdef74242n << 64n, (0x260560010042n << 80n) + 5n, (0x260560010042n << 80n) + 0xbeadn, 1n, 2n].map((value) =>
      value.toString(16).padStart(32, '0').split('').reverse().join('.'),
    ),
  },
  'dnset-syntax.test': {
    type: 'dnset',
    text: [':2:Domain $ is listed', 'exact.example', '*.sub.example', '.both.example', '!ok.both.example', 'value.example :7:Seven for $', ''].join('\n'),
    names: ['exact.example', 'www.exact.example', 'sub.example', 'a.sub.example', 'b.a.sub.example', 'both.example', 'x.both.example', 'ok.both.example', 'value.example', 'other.example'],
  },
};

let rbldnsd: Rbldnsd;
let server: DnsServer;
let scratch: string;

test.before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'imp-cdr-syntax-'));
  chmodSync(scratch, 0o755);
  for (const [zone, { type, text }] of Object.entries(SYNTAX_ZONES)) {
    const file = join(scratch, zone);
    writeFileSync(file, text);
    chmodSync(file, 0o644);
    ZONES.push({ zone, type, file });
  }
  rbldnsd = await startRbldnsd(ZONES);
  server = new DnsServer(pino({ level: 'silent' }));
  server.setZones(ZONES.flatMap(({ zone, type, file }) => feedZones(zone, parseFeed(readFileSync(file), type, file).dataset, 2100)));
  await server.listen('127.0.0.1', 0);
});

test.after.always(async () => {
  await rbldnsd?.stop();
  await server?.close();
  rmSync(scratch, { recursive: true, force: true });
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

test.serial('every syntax form matches rbldnsd', async (t) => {
  const questions = Object.entries(SYNTAX_ZONES).flatMap(([zone, { names }]) => [
    { name: zone, type: 'SOA' },
    { name: zone, type: 'NS' },
    ...names.flatMap((name) => ['A', 'TXT', 'ANY'].map((type) => ({ name: `${name}.${zone}`, type }))),
  ]);
  const [ours, theirs] = await Promise.all([digBatch(server.port, questions), digBatch(rbldnsd.port, questions)]);
  compare(t, questions, ours, theirs);
  t.true(ours.filter((result) => result.answers.length > 0).length >= 40);
});

test.serial('UDP answers match rbldnsd', async (t) => {
  const next = random(20261204);
  const questions = ZONES.filter(({ zone }) => !(zone in SYNTAX_ZONES)).flatMap(({ zone, type, file }) => questionsFor(zone, type, file, 300, next));
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
  const questions = ZONES.filter(({ zone }) => !(zone in SYNTAX_ZONES)).flatMap(({ zone, type, file }) => questionsFor(zone, type, file, 20, next));
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

/** Sends raw bytes over UDP and returns the first response, or undefined after 500 ms. */
async function rawQuery(port: number, bytes: Buffer): Promise<Buffer | undefined> {
  const socket = createSocket('udp4');
  try {
    return await new Promise<Buffer | undefined>((resolveReply) => {
      const timer = setTimeout(() => resolveReply(undefined), 500);
      socket.on('message', (message) => {
        clearTimeout(timer);
        resolveReply(message);
      });
      socket.send(bytes, port, '127.0.0.1');
    });
  } finally {
    socket.close();
  }
}

function header(id: number, flags: number, questions: number): Buffer {
  const bytes = Buffer.alloc(12);
  bytes.writeUInt16BE(id, 0);
  bytes.writeUInt16BE(flags, 2);
  bytes.writeUInt16BE(questions, 4);
  return bytes;
}

const QUESTION = Buffer.from([1, 50, 1, 48, 1, 48, 3, 49, 50, 55, 7, ...Buffer.from('dnsbl-1'), 4, ...Buffer.from('test'), 0, 0, 1, 0, 1]);

test.serial('malformed queries answered or dropped', async (t) => {
  t.is(await rawQuery(server.port, Buffer.from([1, 2, 3])), undefined, 'shorter than a header: dropped');

  const truncated = await rawQuery(server.port, Buffer.concat([header(0x1234, 0x0100, 1), QUESTION.subarray(0, 5)]));
  t.is(truncated?.readUInt16BE(0), 0x1234);
  t.is(truncated!.readUInt16BE(2) & 0x000f, 1, 'FORMERR');

  const noQuestion = await rawQuery(server.port, header(0x2222, 0x0100, 0));
  t.is(noQuestion!.readUInt16BE(2) & 0x000f, 1, 'FORMERR for no question');

  const status = await rawQuery(server.port, Buffer.concat([header(0x3333, 0x1000, 1), QUESTION]));
  t.is(status!.readUInt16BE(2) & 0x000f, 4, 'NOTIMP for opcode STATUS');

  const response = await rawQuery(server.port, Buffer.concat([header(0x4444, 0x8000, 1), QUESTION]));
  t.is(response, undefined, 'a response is never answered');

  const good = await rawQuery(server.port, Buffer.concat([header(0x5555, 0x0100, 1), QUESTION]));
  t.is(good!.readUInt16BE(2) & 0x000f, 0, 'the server still answers after bad packets');
  t.is(good!.readUInt16BE(6), 1, 'one answer for 2.0.0.127');
});

test('formatIp6 prints compressed form', (t) => {
  t.is(formatIp6(parseIp6Entry('2a12:2640::/29')!.network), '2a12:2640::');
});
