import { chmodSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';

import test from 'ava';

import { digBatch, startRbldnsd } from './helpers/dns.js';
import { cdrctl, removeNode, restartNode, SHARED_DATA, startNode, type TestNode } from './helpers/node.js';

let node: TestNode;
let scratch: string;

test.before(async () => {
  node = await startNode();
  scratch = mkdtempSync(join(tmpdir(), 'imp-cdr-feeds-'));
  // rbldnsd runs as user rbldns and reads the export from here.
  chmodSync(scratch, 0o755);
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
  rmSync(scratch, { recursive: true, force: true });
});

interface FeedDetail {
  version: number;
  entries: number;
  exclusions: number;
  badLines: number;
  encoding: string;
  lastError: string;
  lineErrors: string[];
}

/** Reads `cdrctl feeds status` output back into numbers. */
function parseDetail(stdout: string): FeedDetail {
  const field = (name: string) => new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(stdout)?.[1] ?? '';
  const entries = /^entries:\s+(\d+) \((\d+) exclusions\), \d+ bytes, (\S+)$/m.exec(stdout);
  return {
    version: Number(/^version:\s+(\d+)/m.exec(stdout)?.[1] ?? -1),
    entries: Number(entries?.[1] ?? -1),
    exclusions: Number(entries?.[2] ?? -1),
    encoding: entries?.[3] ?? '',
    badLines: Number(field('bad lines')),
    lastError: field('last error'),
    lineErrors: stdout.split('\n').filter((line) => line.startsWith('  /') || line.startsWith('  http')).map((line) => line.trim()),
  };
}

async function lookupJson(kind: string, key: string): Promise<{ verdict: string; score: number; listings: { source: string; returnCode: string; reason: string; category: string }[]; reasons: string[] }> {
  const result = await cdrctl(node, ['lookup', '--json', kind, key]);
  return JSON.parse(result.stdout);
}

/** Counts entries and exclusions the way the rbldnsd man page defines them: one data line each. */
function countDataLines(file: string): { entries: number; exclusions: number } {
  let entries = 0;
  let exclusions = 0;
  for (const raw of readFileSync(file, 'latin1').split('\n')) {
    const line = raw.trim();
    if (line === '' || /^[#;:$]/.test(line) || line.startsWith('//')) continue;
    if (line.startsWith('!')) exclusions += 1;
    else entries += 1;
  }
  return { entries, exclusions };
}

function filesUnder(folder: string): string[] {
  return readdirSync(folder).flatMap((name) => {
    const path = join(folder, name);
    return statSync(path).isDirectory() ? filesUnder(path) : [path];
  });
}

/**
 * Every file under dnsbl/, ip/ and domains/ with the format it is added as and the outcome: the
 * entries it lists, or the code it is rejected with and why.
 */
const SHARED_FEEDS: Record<string, { format: string; code?: string; lookup?: [string, string]; badLines?: string[] }> = {
  'dnsbl/uninvitedactivity-mirror/dnsbl-1.uceprotect.net': { format: 'ip4set', lookup: ['ip', '1.1.138.2'] },
  'dnsbl/uninvitedactivity-mirror/dnsbl-2.uceprotect.net': { format: 'ip4set', lookup: ['ip', '1.24.16.7'] },
  'dnsbl/uninvitedactivity-mirror/ips.backscatterer.org': {
    format: 'ip4set',
    lookup: ['ip', '100.15.15.128'],
    badLines: ['2257: "168.1=" is not an IPv4 address, prefix or range'],
  },
  'dnsbl/uninvitedactivity-mirror/ips.whitelisted.org': { format: 'ip4set', lookup: ['ip', '1.23.206.170'] },
  'dnsbl/uninvitedactivity-mirror/psbl.txt': { format: 'iplist', lookup: ['ip', '20.109.162.150'] },
  'dnsbl/uninvitedactivity-mirror/allowVerifiedMailServers.txt': { format: 'iplist', lookup: ['ip', '137.22.237.119'] },
  // Its second line is 0.0.0.0/0, which would list every address.
  'dnsbl/uninvitedactivity-mirror/derived/nixspam-ip.txt': { format: 'iplist', code: 'ERR_FEED_LISTS_EVERYTHING' },
  'dnsbl/uninvitedactivity-mirror/derived/uceprotect-2-NetworkRanges.txt': { format: 'ip4trie', lookup: ['network', '1.24.16.0/24'] },
  'ip/spamhaus-drop/secops-mirror/drop.txt': { format: 'iplist', lookup: ['ip', '1.10.16.1'] },
  'ip/spamhaus-drop/secops-mirror/edrop.txt': { format: 'iplist', lookup: ['ip', '2.56.247.9'] },
  'ip/spamhaus-drop/secops-mirror/drop_ipv6.txt': { format: 'ip6trie', lookup: ['ip', '2a12:2640::1'] },
  // NDJSON of autonomous systems: no line is an address.
  'ip/spamhaus-drop/secops-mirror/asn_drop.json': { format: 'iplist', code: 'ERR_FEED_FORMAT' },
  'ip/spamhaus-drop/secops-mirror/history/drop-2018-09-24.txt': { format: 'ip4trie' },
  'ip/spamhaus-drop/secops-mirror/history/drop-2021-09-03.txt': { format: 'ip4trie' },
  'ip/spamhaus-drop/secops-mirror/history/drop-2023-07-18.txt': { format: 'ip4trie' },
  'ip/spamhaus-drop/secops-mirror/history/edrop-2021-09-03.txt': { format: 'ip4trie' },
  'ip/spamhaus-drop/secops-mirror/history/edrop-2023-07-18.txt': { format: 'ip4trie' },
  'domains/disposable-email-domains/disposable_email_blocklist.conf': { format: 'domainlist', lookup: ['domain', '0-mail.com'] },
  'domains/public-suffix-list/public_suffix_list.dat': { format: 'domainlist', lookup: ['domain', 'a.other.ck'] },
  // Test vectors, "input expected" per line: not a list of domains.
  'domains/public-suffix-list/tests.txt': { format: 'domainlist', code: 'ERR_FEED_FORMAT' },
  'domains/public-suffix-list/test_psl.txt': { format: 'domainlist', code: 'ERR_FEED_FORMAT' },
};

test.serial('every shared list imports or is rejected', async (t) => {
  const files = [...filesUnder(join(SHARED_DATA, 'dnsbl')), ...filesUnder(join(SHARED_DATA, 'ip')), ...filesUnder(join(SHARED_DATA, 'domains'))].map((file) =>
    relative(SHARED_DATA, file),
  );
  t.deepEqual(files.sort(), Object.keys(SHARED_FEEDS).sort(), 'the table covers every shared file');

  let index = 0;
  for (const [file, expected] of Object.entries(SHARED_FEEDS)) {
    index += 1;
    const path = join(SHARED_DATA, file);
    const id = `shared-${index}`;
    const added = await cdrctl(node, ['feeds', 'add', id, path, expected.format, '--refresh', '0']);
    const detail = parseDetail(added.stdout);
    if (expected.code) {
      t.is(added.code, 1, `${file} add fails`);
      t.true(detail.lastError.startsWith(`${expected.code}:`), `${file}: ${detail.lastError}`);
      t.is(detail.version, 0, `${file} has no version in force`);
      continue;
    }
    t.is(added.code, 0, `${file}: ${added.stdout}${added.stderr}`);
    t.is(detail.version, 1, file);
    const badLines = (expected.badLines ?? []).map((line) => `${path}:${line}`);
    t.is(detail.badLines, badLines.length, `${file}: ${detail.lineErrors.join(', ')}`);
    t.deepEqual(detail.lineErrors, badLines);
    const counted = countDataLines(path);
    t.is(detail.entries, counted.entries - badLines.length, `${file} entries`);
    t.is(detail.exclusions, counted.exclusions, `${file} exclusions`);

    if (expected.lookup) {
      const [kind, key] = expected.lookup;
      const reputation = await lookupJson(kind, key);
      t.true(reputation.listings.some((listing) => listing.source === id), `${kind} ${key} listed by ${file}`);
    }
  }
});

test.serial('Latin-1 header does not stop import', async (t) => {
  const status = await cdrctl(node, ['feeds', 'status', 'shared-1']);
  const detail = parseDetail(status.stdout);
  t.is(detail.encoding, 'latin1');
  t.is(detail.entries, 50_294);
});

test.serial('listing weighs in the verdict', async (t) => {
  const listed = await lookupJson('ip', '1.1.138.2');
  const uce = listed.listings.find((listing) => listing.source === 'shared-1')!;
  t.is(uce.returnCode, '127.0.0.2');
  t.is(uce.reason, 'IP 1.1.138.2 is UCEPROTECT-Level 1 listed. See http://www.uceprotect.net/rblcheck.php?ipr=1.1.138.2');
  t.is(uce.category, 'block');
  t.is(listed.verdict, 'malicious');
  t.true(listed.reasons.includes('listed by shared-1 (block -80)'), listed.reasons.join('; '));
  // The text output gives each listing a line of its own.
  const text = await cdrctl(node, ['lookup', 'ip', '1.1.138.2']);
  t.regex(text.stdout, /\n {2}listed by shared-1 \(block\): 127\.0\.0\.2 "IP 1\.1\.138\.2 is UCEPROTECT-Level 1 listed\. See http:\/\/www\.uceprotect\.net\/rblcheck\.php\?ipr=1\.1\.138\.2"\n/);

  // 127.0.0.1 is excluded in the UCEPROTECT files and listed by none of the others.
  const excluded = await lookupJson('ip', '127.0.0.1');
  t.deepEqual(excluded.listings, []);
  t.is(excluded.verdict, 'neutral');
});

test.serial('domain wildcard and exclusion from PSL', async (t) => {
  // public_suffix_list.dat has "*.ck" and "!www.ck": www.ck is excluded, a.other.ck listed by the wildcard.
  const excluded = await lookupJson('domain', 'www.ck');
  t.deepEqual(excluded.listings, []);
  const wildcard = await lookupJson('domain', 'a.other.ck');
  t.deepEqual(
    wildcard.listings.map((listing) => listing.source),
    ['shared-19'],
  );
});

test.serial('bad feed replaced keeps previous version', async (t) => {
  const file = join(scratch, 'local.txt');
  writeFileSync(file, '192.0.2.1\n192.0.2.0/28 ; documentation\n198.51.100.7\n');
  const added = await cdrctl(node, ['feeds', 'add', 'local', file, 'iplist', '--refresh', '0', '--category', 'suspect']);
  t.is(added.code, 0, added.stdout + added.stderr);
  t.is(parseDetail(added.stdout).entries, 3);

  const broken: [string, string | Buffer, string][] = [
    ['empty file', '', 'ERR_FEED_EMPTY'],
    ['comments only', '# nothing listed today\n; still nothing\n', 'ERR_FEED_EMPTY'],
    ['whole Internet', '192.0.2.1\n0.0.0.0/0\n', 'ERR_FEED_LISTS_EVERYTHING'],
    ['whole IPv6 space', '2001:db8::1\n::/0\n', 'ERR_FEED_LISTS_EVERYTHING'],
    ['wrong format', '<html><body>Service Unavailable</body></html>\n<p>try later</p>\n', 'ERR_FEED_FORMAT'],
    ['mostly garbage', '192.0.2.1\nfoo\nbar\nbaz\n', 'ERR_FEED_FORMAT'],
    ['binary bytes', Buffer.from([0x1f, 0x8b, 0x08, 0x00, 0xff, 0xfe, 0x0a, 0x00, 0x01, 0x0a]), 'ERR_FEED_FORMAT'],
  ];
  for (const [name, content, code] of broken) {
    writeFileSync(file, content);
    const refreshed = await cdrctl(node, ['feeds', 'refresh', 'local']);
    t.is(refreshed.code, 1, name);
    t.regex(refreshed.stdout, new RegExp(`${code}: `), name);
    const detail = parseDetail((await cdrctl(node, ['feeds', 'status', 'local'])).stdout);
    t.is(detail.version, 1, `${name}: version in force`);
    t.is(detail.entries, 3, `${name}: entries in force`);
    const reputation = await lookupJson('ip', '192.0.2.9');
    t.true(reputation.listings.some((listing) => listing.source === 'local'), `${name}: still listed`);
  }

  const missing = join(scratch, 'gone.txt');
  await cdrctl(node, ['feeds', 'add', 'gone', missing, 'iplist', '--refresh', '0']).then((result) => {
    t.is(result.code, 1);
    t.regex(result.stdout, /ERR_FEED_FETCH: cannot open .*gone\.txt/);
  });
});

test.serial('bad lines reported with numbers', async (t) => {
  const file = join(scratch, 'mixed.txt');
  writeFileSync(file, ['# header', '203.0.113.5', '203.0.113.300', '203.0.113.0/24 extra words', '203.0.113.7', '2001:db8::/32', '10.0.0.0/7', ''].join('\n'));
  const added = await cdrctl(node, ['feeds', 'add', 'mixed', file, 'iplist', '--refresh', '0']);
  const detail = parseDetail(added.stdout);
  t.is(added.code, 0, added.stdout);
  t.is(detail.entries, 3);
  t.is(detail.badLines, 3);
  t.deepEqual(detail.lineErrors, [
    `${file}:3: "203.0.113.300" is not an IPv4 or IPv6 address or CIDR`,
    `${file}:4: expected one entry per line, got "203.0.113.0/24 extra words"`,
    `${file}:7: "10.0.0.0/7" is shorter than /8, the shortest prefix a feed may list`,
  ]);
});

test.serial('combined feed lists per section', async (t) => {
  const file = join(scratch, 'combined.zone');
  writeFileSync(
    file,
    ['$SOA 1h ns.test admin.test 1 1h 1h 1d 1h', '$DATASET ip4set:proxy proxies @', ':2:Open proxy $', '192.0.2.10', '$DATASET dnset:names names', 'spam.test.example :5:Domain $', '$DATASET generic:common @', '@ A 127.0.0.8', ''].join('\n'),
  );
  const wrongFormat = await cdrctl(node, ['feeds', 'add', 'combo-wrong', file, 'ip4set', '--refresh', '0']);
  t.is(wrongFormat.code, 1);
  t.regex(wrongFormat.stdout, /ERR_FEED_FORMAT: .*combined\.zone:2: \$DATASET makes this a combined dataset; add the feed with format combined/);

  const added = await cdrctl(node, ['feeds', 'add', 'combo', file, 'combined', '--zone', 'combo.test', '--refresh', '0']);
  t.is(added.code, 0, added.stdout);
  const detail = parseDetail(added.stdout);
  t.is(detail.entries, 2);
  t.deepEqual(detail.lineErrors, [`${file}:7: $DATASET needs one of ip4set, ip4trie, ip6trie, dnset and at least one subzone, got "generic:common @"; its lines are skipped`]);

  const proxy = await lookupJson('ip', '192.0.2.10');
  const listing = proxy.listings.find((entry) => entry.source === 'combo:proxy');
  t.is(listing?.reason, 'Open proxy 192.0.2.10');
  const [inSubzone, inBase, domain] = await digBatch(node.dnsPort, [
    { name: '10.2.0.192.proxies.combo.test', type: 'A' },
    { name: '10.2.0.192.combo.test', type: 'TXT' },
    { name: 'spam.test.example.names.combo.test', type: 'TXT' },
  ]);
  t.deepEqual(inSubzone!.answers, ['A 2100 127.0.0.2']);
  t.deepEqual(inBase!.answers, ['TXT 2100 "Open proxy 192.0.2.10"']);
  t.deepEqual(domain!.answers, ['TXT 2100 "Domain spam.test.example"']);
  t.is((await cdrctl(node, ['feeds', 'remove', 'combo'])).code, 0);
});

/** `option` is the command-line option that cdrctl names beside the field, when there is one. */
const BAD_DEFINITIONS: { name: string; args: string[]; field: string; option?: string }[] = [
  { name: 'id with capitals', args: ['Bad', '/tmp/x', 'iplist'], field: 'id' },
  { name: 'relative source', args: ['rel', 'ftp://example.invalid/x', 'iplist'], field: 'source' },
  { name: 'unknown format', args: ['fmt', '/tmp/x', 'csv'], field: 'format' },
  { name: 'invalid zone', args: ['zone', '/tmp/x', 'iplist', '--zone', 'bad zone'], field: 'zone', option: '--zone' },
  { name: 'invalid category', args: ['cat', '/tmp/x', 'iplist', '--category', 'Block!'], field: 'category', option: '--category' },
  { name: 'refresh below 60', args: ['r59', '/tmp/x', 'iplist', '--refresh', '59'], field: 'refreshSeconds', option: '--refresh' },
  { name: 'refresh above a week', args: ['r1w', '/tmp/x', 'iplist', '--refresh', '604801'], field: 'refreshSeconds', option: '--refresh' },
  { name: 'timeout below 100', args: ['t99', '/tmp/x', 'iplist', '--timeout', '99'], field: 'timeoutMs', option: '--timeout' },
  { name: 'size above 1 GiB', args: ['big', '/tmp/x', 'iplist', '--max-bytes', '1073741825'], field: 'maxBytes', option: '--max-bytes' },
];

for (const bad of BAD_DEFINITIONS) {
  test.serial(`definition rejected: ${bad.name}`, async (t) => {
    const result = await cdrctl(node, ['feeds', 'add', ...bad.args]);
    t.is(result.code, 1);
    t.regex(result.stderr, new RegExp(`feed ${bad.field}${bad.option ? ` \\(${bad.option}\\)` : ''} must be`));
  });
}

test.serial('definition limits accepted exactly', async (t) => {
  const file = join(scratch, 'limits.txt');
  writeFileSync(file, '192.0.2.200\n');
  for (const [id, option, value] of [
    ['lim-r60', '--refresh', '60'],
    ['lim-r1w', '--refresh', '604800'],
    ['lim-t100', '--timeout', '100'],
    ['lim-b1g', '--max-bytes', '1073741824'],
  ] as const) {
    const result = await cdrctl(node, ['feeds', 'add', id, file, 'iplist', option, value]);
    t.is(result.code, 0, `${id}: ${result.stderr}`);
    t.is((await cdrctl(node, ['feeds', 'remove', id])).code, 0);
  }
  const duplicate = await cdrctl(node, ['feeds', 'add', 'local', file, 'iplist']);
  t.is(duplicate.code, 1);
  t.regex(duplicate.stderr, /a feed with id "local" exists/);
  const unknown = await cdrctl(node, ['feeds', 'status', 'no-such-feed']);
  t.is(unknown.code, 1);
  t.regex(unknown.stderr, /no feed with id "no-such-feed"/);
});

test.serial('versions survive a restart', async (t) => {
  await node.stop();
  node = await restartNode(node);
  const detail = parseDetail((await cdrctl(node, ['feeds', 'status', 'local'])).stdout);
  t.is(detail.version, 1);
  t.is(detail.entries, 3);
  const reputation = await lookupJson('ip', '198.51.100.7');
  t.true(reputation.listings.some((listing) => listing.source === 'local'));
  const uce = await lookupJson('ip', '1.1.138.2');
  t.true(uce.listings.some((listing) => listing.source === 'shared-1'));
});

test.serial('removed feed lists nothing', async (t) => {
  t.is((await cdrctl(node, ['feeds', 'remove', 'local'])).code, 0);
  const reputation = await lookupJson('ip', '198.51.100.7');
  t.false(reputation.listings.some((listing) => listing.source === 'local'));
  const list = await cdrctl(node, ['feeds', 'list']);
  t.notRegex(list.stdout, /^local\t/m);
});

/** An HTTP server on 127.0.0.1 whose answer each test sets; it counts requests and conditional ones. */
async function startFeedServer(): Promise<{ server: Server; url: string; state: { body: Buffer; etag: string; mode: string; requests: number; conditional: number } }> {
  const state = { body: Buffer.from('192.0.2.77\n'), etag: '"v1"', mode: 'normal', requests: 0, conditional: 0 };
  const server = createServer((request, response) => {
    state.requests += 1;
    if (state.mode === 'hang') {
      return;
    }
    if (state.mode === 'truncate') {
      response.writeHead(200, { 'content-length': String(state.body.length + 1000) });
      response.write(state.body);
      response.socket?.destroy();
      return;
    }
    if (request.headers['if-none-match'] === state.etag) {
      state.conditional += 1;
      response.writeHead(304);
      response.end();
      return;
    }
    response.writeHead(200, { etag: state.etag, 'content-length': String(state.body.length) });
    response.end(state.body);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
  const port = (server.address() as { port: number }).port;
  return { server, url: `http://127.0.0.1:${port}/list.txt`, state };
}

test.serial('HTTP feed with conditional requests', async (t) => {
  const { server, url, state } = await startFeedServer();
  try {
    t.is((await cdrctl(node, ['feeds', 'add', 'web', url, 'iplist', '--refresh', '0', '--timeout', '1000'])).code, 0);
    t.is((await cdrctl(node, ['feeds', 'refresh', 'web'])).code, 0);
    t.is(state.requests, 2);
    t.is(state.conditional, 1, 'the second request sent If-None-Match and got 304');
    t.is(parseDetail((await cdrctl(node, ['feeds', 'status', 'web'])).stdout).version, 1);

    state.body = Buffer.from('192.0.2.77\n192.0.2.78\n');
    state.etag = '"v2"';
    t.is((await cdrctl(node, ['feeds', 'refresh', 'web'])).code, 0);
    const detail = parseDetail((await cdrctl(node, ['feeds', 'status', 'web'])).stdout);
    t.is(detail.version, 2);
    t.is(detail.entries, 2);

    state.mode = 'truncate';
    const truncated = await cdrctl(node, ['feeds', 'refresh', 'web']);
    t.is(truncated.code, 1);
    t.regex(truncated.stdout, /ERR_FEED_TRUNCATED/);

    state.mode = 'hang';
    const hung = await cdrctl(node, ['feeds', 'refresh', 'web']);
    t.is(hung.code, 1);
    t.regex(hung.stdout, /ERR_FEED_TIMEOUT: GET .* did not finish within 1000 ms/);
    t.is(parseDetail((await cdrctl(node, ['feeds', 'status', 'web'])).stdout).version, 2, 'version 2 stays in force');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test.serial('size limit exact and one beyond', async (t) => {
  const file = join(scratch, 'sized.txt');
  const body = '192.0.2.10\n192.0.2.11\n';
  writeFileSync(file, body);
  const exact = await cdrctl(node, ['feeds', 'add', 'sized', file, 'iplist', '--refresh', '0', '--max-bytes', String(body.length)]);
  t.is(exact.code, 0, exact.stdout);
  writeFileSync(file, `${body}192.0.2.1\n`.slice(0, body.length + 1));
  const beyond = await cdrctl(node, ['feeds', 'refresh', 'sized']);
  t.is(beyond.code, 1);
  t.regex(beyond.stdout, new RegExp(`ERR_FEED_TOO_LARGE: .* has at least ${body.length + 1} bytes, more than the feed's maxBytes of ${body.length}`));
});

test.serial('DNS front serves a feed zone', async (t) => {
  const file = join(SHARED_DATA, 'dnsbl', 'uninvitedactivity-mirror', 'ips.backscatterer.org');
  t.is((await cdrctl(node, ['feeds', 'add', 'bs-zone', file, 'ip4set', '--zone', 'bs.test', '--refresh', '0'])).code, 0);
  const [listed, testPoint, excluded, soa] = await digBatch(node.dnsPort, [
    { name: '128.15.15.100.bs.test', type: 'TXT' },
    { name: '2.0.0.127.bs.test', type: 'A' },
    { name: '1.0.0.127.bs.test', type: 'A' },
    { name: 'bs.test', type: 'SOA' },
  ]);
  t.deepEqual(listed!.answers, ['TXT 2100 "Sorry 100.15.15.128 is blacklisted at http://www.backscatterer.org/?ip=100.15.15.128"']);
  t.deepEqual(testPoint!.answers, ['A 2100 127.0.0.2']);
  t.is(excluded!.status, 'NXDOMAIN');
  t.deepEqual(soa!.answers, ['SOA 3600 ips.backscatterer.org. blacklistmaster.backscatterer.org. 2026070718 3600 3600 86400 3000']);
});

test.serial('exports load into rbldnsd', async (t) => {
  const rbldnsdExport = join(scratch, 'export.rbldnsd');
  const jsonlExport = join(scratch, 'export.jsonl');
  const written = await cdrctl(node, ['feeds', 'export', 'rbldnsd', rbldnsdExport]);
  t.is(written.code, 0, written.stderr);
  const jsonl = await cdrctl(node, ['feeds', 'export', 'jsonl', jsonlExport]);
  t.is(jsonl.code, 0, jsonl.stderr);

  const lines = readFileSync(jsonlExport, 'utf8').trim().split('\n').map((line) => JSON.parse(line) as { feed: string; entry: string; excluded: boolean });
  t.true(lines.some((line) => line.feed === 'shared-1' && line.entry === '1.1.138.2/32' && !line.excluded));
  t.true(lines.some((line) => line.feed === 'shared-1' && line.entry === '10.0.0.0/8' && line.excluded));
  t.regex(jsonl.stdout, new RegExp(`^${lines.length} entries`));

  const badFormat = await cdrctl(node, ['feeds', 'export', 'csv', rbldnsdExport]);
  t.is(badFormat.code, 1);
  t.regex(badFormat.stderr, /export format must be one of rbldnsd, jsonl/);

  const rbldnsd = await startRbldnsd([{ zone: 'export.test', type: 'combined', file: rbldnsdExport }]);
  try {
    const [listed, excluded, domain] = await digBatch(rbldnsd.port, [
      { name: '2.138.1.1.shared-1.export.test', type: 'A' },
      { name: '1.0.0.10.shared-1.export.test', type: 'A' },
      { name: '0-mail.com.shared-18.export.test', type: 'A' },
    ]);
    t.deepEqual(listed!.answers, ['A 2100 127.0.0.2']);
    t.is(excluded!.status, 'NXDOMAIN');
    t.deepEqual(domain!.answers, ['A 2100 127.0.0.2']);
  } finally {
    await rbldnsd.stop();
  }
});
