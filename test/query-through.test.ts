import test from 'ava';

import { CdrError } from '../services/common/errors.js';
import { expandReturnCodes, isErrorCode } from '../services/repository/dns/query-through.js';
import { digBatch } from './helpers/dns.js';
import { cdrctl, removeNode, startNode, type TestNode } from './helpers/node.js';
import { startUpstreamDnsbl, type UpstreamDnsbl } from './helpers/upstream-dnsbl.js';

const ZONE = 'zen.test';
const BUDGET = 40;

let upstream: UpstreamDnsbl;
let node: TestNode;

function reversed(address: string): string {
  return `${address.split('.').reverse().join('.')}.${ZONE}`;
}

test.before(async () => {
  upstream = await startUpstreamDnsbl(ZONE, 2);
  for (let index = 1; index <= 10; index += 1) {
    upstream.records.set(reversed(`192.0.2.${index}`), { a: ['127.0.0.2'], txt: `listed 192.0.2.${index}`, ttl: 600 });
  }
  upstream.records.set(reversed('198.51.100.4'), { a: ['127.0.0.4'], ttl: 600 });
  upstream.records.set(reversed('198.51.100.11'), { a: ['127.0.0.11'], ttl: 600 });
  upstream.records.set(reversed('198.51.100.99'), { a: ['127.255.255.254'], ttl: 600 });
  upstream.records.set(reversed('198.51.100.55'), { a: ['127.0.0.2'], ttl: 1 });
  upstream.records.set(reversed('203.0.113.1'), { silent: true });

  node = await startNode({
    extraConfig: [
      'dnsbl:',
      `  resolvers: ["127.0.0.1:${upstream.port}"]`,
      '  timeoutMs: 300',
      '  lists:',
      `    - zone: ${ZONE}`,
      `      dailyBudget: ${BUDGET}`,
      '      category: block',
      '      codes:',
      '        127.0.0.2: SBL spam source',
      '        127.0.0.4: XBL exploited host',
      '        127.0.0.10-11: PBL policy block',
      'dns:',
      '  port: 0',
      '  indexZone: cdr.test',
    ].join('\n'),
  });
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
  await upstream?.close();
});

async function counters(): Promise<{ made: number; saved: number; budget: string; errors: number }> {
  const { stdout } = await cdrctl(node, ['feeds', 'dnsbl']);
  const row = stdout.split('\n').find((line) => line.startsWith(`${ZONE}\t`))!.split('\t');
  return { made: Number(row[1]), saved: Number(row[2]), budget: row[3]!, errors: Number(row[4]) };
}

test('return code ranges expand', (t) => {
  const codes = expandReturnCodes('bl.test', { '127.0.1.2-6': 'range', '127.0.0.9': 'single' });
  t.deepEqual([...codes.keys()], ['127.0.1.2', '127.0.1.3', '127.0.1.4', '127.0.1.5', '127.0.1.6', '127.0.0.9']);
  t.is(codes.get('127.0.1.6'), 'range');
  for (const bad of ['127.0.1.6-2', '127.0.1.2-256', '127.0.1', 'listed', '127.0.1.2-']) {
    const error = t.throws(() => expandReturnCodes('bl.test', { [bad]: 'x' }), { instanceOf: CdrError });
    t.is(error?.code, 'ERR_CONFIG_INVALID', bad);
  }
  t.true(isErrorCode('127.255.255.254'));
  t.false(isErrorCode('127.0.0.2'));
});

test.serial('8 IMPs cost one query per key', async (t) => {
  const keys = Array.from({ length: 10 }, (_, index) => reversed(`192.0.2.${index + 1}`));
  const notListed = Array.from({ length: 10 }, (_, index) => reversed(`192.0.2.${index + 101}`));
  const questions = [...keys, ...notListed].map((name) => ({ name, type: 'A' }));

  // Eight clients ask the same 20 names at the same time.
  const answers = await Promise.all(Array.from({ length: 8 }, () => digBatch(node.dnsPort, questions)));
  for (const answer of answers) {
    t.deepEqual(answer.slice(0, 10).map((result) => result.answers[0]?.replace(/ \d+ /, ' TTL ')), Array(10).fill('A TTL 127.0.0.2'));
    t.deepEqual(answer.slice(10).map((result) => result.status), Array(10).fill('NXDOMAIN'));
  }
  for (const name of [...keys, ...notListed]) {
    t.is(upstream.counts.get(`A ${name}`), 1, name);
  }
  const after = await counters();
  t.is(after.made, 20);
  t.is(after.saved, 8 * 20 - 20);
});

test.serial('negative answers expire with SOA minimum', async (t) => {
  const name = reversed('192.0.2.150');
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  t.is(upstream.counts.get(`A ${name}`), 1, 'second query answered from the cache');
  await new Promise((resolveWait) => setTimeout(resolveWait, 2200));
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  t.is(upstream.counts.get(`A ${name}`), 2, 'asked again after the 2 s negative TTL');
});

test.serial('positive answers expire with their TTL', async (t) => {
  const name = reversed('198.51.100.55');
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  t.is(upstream.counts.get(`A ${name}`), 1);
  await new Promise((resolveWait) => setTimeout(resolveWait, 1200));
  await digBatch(node.dnsPort, [{ name, type: 'A' }]);
  t.is(upstream.counts.get(`A ${name}`), 2);
});

test.serial('return codes interpreted per list', async (t) => {
  const lookup = async (address: string) => JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', address])).stdout) as {
    verdict: string;
    listings: { source: string; returnCode?: string; reason: string; listed?: boolean }[];
  };
  const xbl = await lookup('198.51.100.4');
  t.deepEqual(xbl.listings.map(({ source, returnCode, reason }) => ({ source, returnCode, reason })), [
    { source: ZONE, returnCode: '127.0.0.4', reason: 'XBL exploited host' },
  ]);
  t.is(xbl.verdict, 'malicious');
  const pbl = await lookup('198.51.100.11');
  t.is(pbl.listings[0]!.reason, 'PBL policy block', 'the range 127.0.0.10-11 covers .11');

  // 127.255.255.254 is an error answer: a lookup error, not a listing, and SERVFAIL on the DNS front.
  const errorAnswer = await lookup('198.51.100.99');
  t.is(errorAnswer.listings.length, 1);
  // Protocol defaults (false, empty string) are left out of the JSON that cdrctl prints.
  t.is(errorAnswer.listings[0]!.source, ZONE);
  t.is(errorAnswer.listings[0]!.listed ?? false, false);
  t.is(errorAnswer.listings[0]!.returnCode ?? '', '');
  t.regex(errorAnswer.listings[0]!.reason, /^lookup failed: ERR_DNSBL_UPSTREAM: zen\.test: upstream returned error code 127\.255\.255\.254 for /);
  t.is(errorAnswer.verdict, 'neutral');
  const [front] = await digBatch(node.dnsPort, [{ name: reversed('198.51.100.99'), type: 'A' }]);
  t.is(front!.status, 'SERVFAIL');
});

test.serial('index zone answers by verdict', async (t) => {
  // 198.51.100.4 is listed upstream with 127.0.0.4, so its verdict is malicious (block weight -80).
  const [listed, listedTxt, neutral, apex] = await digBatch(node.dnsPort, [
    { name: '4.100.51.198.cdr.test', type: 'A' },
    { name: '4.100.51.198.cdr.test', type: 'TXT' },
    { name: '1.0.0.127.cdr.test', type: 'A' },
    { name: 'cdr.test', type: 'SOA' },
  ]);
  t.deepEqual(listed!.answers, ['A 1800 127.0.0.2']);
  t.is(listedTxt!.answers.length, 1);
  t.true(listedTxt!.answers[0]!.startsWith('TXT 1800 "malicious (score -80): listed by zen.test (block -80);'), listedTxt!.answers[0]);
  t.is(neutral!.status, 'NXDOMAIN');
  t.is(apex!.status, 'REFUSED');
});

test.serial('index zone RFC 5782 test points', async (t) => {
  const nibbles = (value: bigint) => value.toString(16).padStart(32, '0').split('').reverse().join('.');
  const results = await digBatch(node.dnsPort, [
    { name: '2.0.0.127.cdr.test', type: 'A' },
    { name: '1.0.0.127.cdr.test', type: 'A' },
    { name: `${nibbles(0xffff7f000002n)}.cdr.test`, type: 'A' },
    { name: `${nibbles(0xffff7f000001n)}.cdr.test`, type: 'A' },
    { name: 'test.cdr.test', type: 'TXT' },
    { name: 'invalid.cdr.test', type: 'A' },
  ]);
  t.deepEqual(
    results.map((result) => `${result.status} ${result.answers.join(', ')}`.trim()),
    ['NOERROR A 300 127.0.0.2', 'NXDOMAIN', 'NOERROR A 300 127.0.0.2', 'NXDOMAIN', 'NOERROR TXT 300 "RFC 5782 test point"', 'NXDOMAIN'],
  );
});

test.serial('silent upstream gives SERVFAIL', async (t) => {
  const [result] = await digBatch(node.dnsPort, [{ name: reversed('203.0.113.1'), type: 'A' }]);
  t.is(result!.status, 'SERVFAIL');
  t.true((await counters()).errors >= 1);
});

test.serial('daily budget exact and one beyond', async (t) => {
  const before = await counters();
  const used = Number(before.budget.split('/')[0]);
  const remaining = BUDGET - used;
  t.true(remaining > 0, `budget ${before.budget}`);

  const fresh = Array.from({ length: remaining + 1 }, (_, index) => ({ name: reversed(`10.9.${Math.floor(index / 250)}.${index % 250}`), type: 'A' }));
  const results = await digBatch(node.dnsPort, fresh);
  t.deepEqual(results.slice(0, remaining).map((result) => result.status), Array(remaining).fill('NXDOMAIN'));
  t.is(results[remaining]!.status, 'SERVFAIL', 'the query beyond the budget is not sent upstream');
  t.is(upstream.counts.get(`A ${fresh[remaining]!.name}`), undefined);
  t.is((await counters()).budget, `${BUDGET}/${BUDGET}`);

  // Cached names are still answered once the budget is used up.
  const [cached] = await digBatch(node.dnsPort, [{ name: reversed('192.0.2.1'), type: 'A' }]);
  t.is(cached!.status, 'NOERROR');
});
