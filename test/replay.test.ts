import { execFile } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';
import { getDomain } from 'tldts';

import { kindToWire } from '../modules/protocol/constants.js';
import { readAuthenticationResults, readMessageFacts, readReceivedSpf } from '../modules/imp-client/replay/message.js';
import { runReplay } from '../modules/imp-client/replay/runner.js';
import { detectFormat, readInputs } from '../modules/imp-client/replay/sources.js';
import type { CdrError } from '../services/common/errors.js';
import { headerBlock, senderDomains, trustedClientIp } from './helpers/mail.js';
import { cdrctl, connectReady, enroll, removeNode, ROOT, SHARED_DATA, startNode, type TestNode } from './helpers/node.js';

const execFileAsync = promisify(execFile);
const REPLAY_MAIN = join(ROOT, 'dist', 'modules', 'imp-client', 'bin', 'imp-cdr-replay.js');
const EMAIL = join(SHARED_DATA, 'email');
const LOGS = join(SHARED_DATA, 'mta-logs', 'lightmeter', 'individual_files');

let node: TestNode;
const folders: string[] = [];

test.before(async () => {
  node = await startNode();
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
  folders.forEach((folder) => rmSync(folder, { recursive: true, force: true }));
});

function tempFolder(): string {
  const folder = mkdtempSync(join(tmpdir(), 'imp-replay-test-'));
  folders.push(folder);
  return folder;
}

async function bundlesFor(names: string[]): Promise<string> {
  const folder = tempFolder();
  for (const name of names) {
    const result = await cdrctl(node, ['client', 'enroll', name, '--out', join(folder, name)]);
    if (result.code !== 0) throw new Error(result.stderr);
  }
  return folder;
}

test.serial('phishing_pot replayed as three IMPs', async (t) => {
  const folder = join(EMAIL, 'phishing_pot');
  const files = readdirSync(folder).sort().map((name) => join(folder, name));

  // What the test expects, computed from the files with its own regular expressions.
  const expectedIps = new Map<string, number>();
  const expectedDomains = new Map<string, number>();
  const unusable: string[] = [];
  for (const file of files) {
    const ip = trustedClientIp(file);
    if (!ip) {
      unusable.push(file);
      continue;
    }
    expectedIps.set(ip, (expectedIps.get(ip) ?? 0) + 1);
    for (const domain of senderDomains(file)) {
      const registrable = getDomain(domain, { allowPrivateDomains: true });
      if (registrable) expectedDomains.set(registrable, (expectedDomains.get(registrable) ?? 0) + 1);
    }
  }

  const summary = await runReplay({
    inputs: [folder],
    nodes: [`127.0.0.1:${node.port}`],
    bundlesDir: await bundlesFor(['imp-replay-1', 'imp-replay-2', 'imp-replay-3']),
    imps: 3,
    rate: 0,
    stateDir: tempFolder(),
  });

  t.is(summary.itemsRead, files.length);
  t.is(summary.sessionsReported, files.length - unusable.length);
  t.deepEqual(summary.skipped.map((entry) => entry.name), unusable);
  t.is(summary.batchesLeftInSpool, 0);
  t.is(summary.batchesDropped, 0);
  t.is(summary.lookups, summary.sessionsReported);
  t.is(summary.lookupsFailed, 0);
  t.is(summary.cacheHits + summary.cacheMisses, summary.lookups);

  const reader = await enroll(node, 'imp-replay-reader');
  const client = await connectReady(node, reader, 'imp-replay-reader');
  const ips = [...expectedIps.keys()];
  for (let offset = 0; offset < ips.length; offset += 1000) {
    const chunk = ips.slice(offset, offset + 1000);
    const answer = await client.request({ lookup: { keys: chunk.map((ip) => ({ kind: kindToWire('ip'), key: ip })) } });
    answer.lookupResponse!.results!.forEach((result, index) => {
      const ip = chunk[index]!;
      t.is(Number(result.reputation?.counters?.connections), expectedIps.get(ip)!, `connections of ${ip}`);
      t.is(Number(result.reputation?.counters?.phish), expectedIps.get(ip)!, `phish of ${ip}`);
    });
  }

  const topIps = [...expectedIps.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  const topDomains = [...expectedDomains.entries()].sort((a, b) => b[1] - a[1]).slice(0, 10);
  const answer = await client.request({
    lookup: { keys: [...topIps.map(([ip]) => ({ kind: kindToWire('ip'), key: ip })), ...topDomains.map(([domain]) => ({ kind: kindToWire('domain'), key: domain }))] },
  });
  const results = answer.lookupResponse!.results!;
  topIps.forEach(([ip], index) => {
    // Below neutral means a negative score; the verdict may still read neutral for a handful of messages.
    t.true((results[index]!.reputation?.score ?? 0) < 0, `score of ${ip}`);
  });
  topDomains.forEach(([domain, count], index) => {
    const reputation = results[topIps.length + index]!.reputation;
    t.is(Number(reputation?.counters?.messages), count, `messages of ${domain}`);
    t.true((reputation?.score ?? 0) < 0, `score of ${domain}`);
  });
  await client.close();
});

/** Returns the first Authentication-Results header line of a file, unfolded. */
function firstAuthenticationResults(path: string): string | undefined {
  return headerBlock(path)
    .split(/\r?\n/)
    .find((line) => /^authentication-results:/i.test(line));
}

function expectedClass(line: string, method: string): string | undefined {
  const results = [...line.matchAll(new RegExp(`[;\\s]${method}=([a-z]+)`, 'gi'))].map((match) => match[1]!.toLowerCase());
  const classes = results.map((result) =>
    result === 'pass' ? 'pass' : ['fail', 'softfail', 'permerror'].includes(result) ? 'fail' : ['none', 'neutral', 'temperror', 'policy'].includes(result) ? 'none' : undefined,
  );
  return classes.includes('pass') ? 'pass' : classes.includes('fail') ? 'fail' : classes.includes('none') ? 'none' : undefined;
}

test('authentication_milter results match the files', (t) => {
  const folder = join(EMAIL, 'authentication_milter', 'example');
  let checked = 0;
  for (const name of readdirSync(folder).sort()) {
    const line = firstAuthenticationResults(join(folder, name));
    if (!line) continue;
    const parsed = readAuthenticationResults(line);
    for (const method of ['spf', 'dkim', 'dmarc'] as const) {
      t.is<string | undefined, string | undefined>(parsed[method], expectedClass(line, method), `${method} of ${name}`);
    }
    checked += 1;
  }
  t.true(checked >= 30, `only ${checked} files carry Authentication-Results`);
});

test('SpamAssassin Authentication-Results samples', (t) => {
  const cases: [string, { spf?: string; dkim?: string; dmarc?: string; authservId?: string }][] = [
    ['Authentication-Results: authrestest1int;\n    spf=pass smtp.mailfrom=bounce.example.org;\n    dkim=pass header.i=@example.org;\n    dkim=fail header.i=@another.signing.domain.example', { spf: 'pass', dkim: 'pass', authservId: 'authrestest1int' }],
    ['Authentication-Results: authrestest2int; dmarc=none (p=none dis=none) header.from=ximian.com', { dmarc: 'none', authservId: 'authrestest2int' }],
    ['Authentication-Results: authrestest4int 2; spf=fail reason (BAH) = "just some (<>.%&! reason" smtp.mailfrom=dogma.slashnull.org', { spf: 'fail', authservId: 'authrestest4int' }],
    ['Authentication-Results: authrestest6int;\n        dkim=fail (2048-bit key; unprotected) header.d=gmail.com header.i=" foo bar \\"xyz\\"@gmail.com" header.b=SI+iqkld;', { dkim: 'fail', authservId: 'authrestest6int' }],
    ['Authentication-Results: somewhere.someplace.org; header.From=mickey@someplace.org; dkim=pass (\n        message from someplace.org verified; );', { dkim: 'pass', authservId: 'somewhere.someplace.org' }],
    // Office 365 writes no authserv-id.
    ['Authentication-Results: spf=fail (sender IP is 109.202.24.52)\n smtp.mailfrom=postfiji.com.fj; dkim=none (message not signed)\n header.d=none;dmarc=none action=none\n header.from=postfiji.com.fj;compauth=fail reason=001', { spf: 'fail', dkim: 'none', dmarc: 'none' }],
    ['Authentication-Results: mx.example.org; spf=softfail (mx.example.org: domain of a;b@x.com does not designate 2001:db8::1) smtp.mailfrom=x.com; dmarc=pass (p=reject; sp=none) header.from=x.com', { spf: 'fail', dmarc: 'pass', authservId: 'mx.example.org' }],
  ];
  for (const [line, expected] of cases) {
    const parsed = readAuthenticationResults(line);
    t.deepEqual(
      { spf: parsed.spf, dkim: parsed.dkim, dmarc: parsed.dmarc, authservId: parsed.authservId },
      { spf: expected.spf, dkim: expected.dkim, dmarc: expected.dmarc, authservId: expected.authservId },
      line.slice(0, 60),
    );
  }
});

test('Received-SPF samples give client and result', (t) => {
  const spf3 = headerBlock(join(EMAIL, 'spamassassin-testdata', 'nice', 'spf3-received-spf'))
    .split(/\r?\n/)
    .find((line) => /^received-spf:/i.test(line))!;
  t.deepEqual(readReceivedSpf(spf3), { result: 'fail', clientIp: '69.61.78.188', helo: 'smtp.dostech.net' });
  t.deepEqual(readReceivedSpf('Received-SPF: Pass (x: domain of a@x.com designates ::ffff:192.0.2.5 as permitted sender) client-ip=::ffff:192.0.2.5; helo="mail.x.com";'), {
    result: 'pass',
    clientIp: '192.0.2.5',
    helo: 'mail.x.com',
  });
  t.deepEqual(readReceivedSpf('Received-SPF: neutral (x: no client named)'), { result: 'none', clientIp: undefined, helo: undefined });
});

function message(headers: string[], body = 'body\r\n'): Buffer {
  return Buffer.from(`${headers.join('\r\n')}\r\n\r\n${body}`, 'latin1');
}

test('hard message cases give exact facts', async (t) => {
  const ipv6InParentheses = await readMessageFacts(
    message([
      'Received: from relay.example.net (2001:DB8:0:0::25) by mx.example.org with ESMTPS; Mon, 1 Jan 2024 00:00:00 +0000',
      'Return-Path: <bounce@Example.NET>',
      'From: =?UTF-8?B?w4lsb2TDqWU=?= <news@example.net>',
    ]),
  );
  t.deepEqual(
    { ip: ipv6InParentheses.clientIp, helo: ipv6InParentheses.helo, source: ipv6InParentheses.hopSource, sender: ipv6InParentheses.envelopeSender, from: ipv6InParentheses.fromDomain },
    { ip: '2001:db8::25', helo: 'relay.example.net', source: 'received', sender: 'bounce@Example.NET', from: 'example.net' },
  );

  const mapped = await readMessageFacts(message(['Received: from [IPv6:::ffff:198.51.100.7] (unknown) by mx.example.org; Mon, 1 Jan 2024', 'From: a@b.example.com']));
  t.is(mapped.clientIp, '198.51.100.7');
  t.is(mapped.helo, undefined);

  const belowAr = await readMessageFacts(
    message([
      'Received: from internal.example.org (10.0.0.5) by store.example.org; Mon, 1 Jan 2024',
      'Authentication-Results: mx.example.org;\r\n spf=pass (comment; with a semicolon) smtp.mailfrom="x@y.example.com";\r\n dkim=pass header.d=y.example.com',
      'Received: from mail.y.example.com (mail.y.example.com [203.0.113.40]) by mx.example.org; Mon, 1 Jan 2024',
      'Received: from laptop (192.168.1.20) by mail.y.example.com; Mon, 1 Jan 2024',
      'From: "Y, Sender" <x@y.example.com>',
    ]),
  );
  t.deepEqual(
    { ip: belowAr.clientIp, source: belowAr.hopSource, spf: belowAr.spf, dkim: belowAr.dkim, dmarc: belowAr.dmarc, sender: belowAr.envelopeSender },
    { ip: '203.0.113.40', source: 'received-after-ar', spf: 'pass', dkim: 'pass', dmarc: undefined, sender: undefined },
  );

  // Latin-1 bytes that are not UTF-8, in a display name and the subject.
  const latin1 = await readMessageFacts(
    Buffer.concat([
      Buffer.from('Received: from mx.example.com (mx.example.com [192.0.2.99]) by mx.example.org; Mon, 1 Jan 2024\r\nFrom: "M'),
      Buffer.from([0xfc, 0xe9]),
      Buffer.from('ller" <m@example.com>\r\nSubject: caf'),
      Buffer.from([0xe9]),
      Buffer.from('\r\n\r\nbody\r\n'),
    ]),
  );
  t.is(latin1.clientIp, '192.0.2.99');
  t.is(latin1.fromDomain, 'example.com');
});

const unusableMessages: [string, Buffer][] = [
  ['no headers at all', Buffer.from('just a body\r\n')],
  ['no Received header', message(['From: a@example.com', 'Subject: hi'])],
  ['only private hops', message(['Received: from laptop (192.168.1.20) by mail.example.com; Mon, 1 Jan 2024'])],
  ['Received without address', message(['Received: by mail.example.com with local; Mon, 1 Jan 2024'])],
];
for (const [name, raw] of unusableMessages) {
  test(`unusable message: ${name}`, async (t) => {
    const error = (await t.throwsAsync(readMessageFacts(raw))) as CdrError;
    t.is(error.code, 'ERR_REPLAY_MESSAGE');
  });
}

test('Postfix log sessions are exact', (t) => {
  const items = [...readInputs([join(LOGS, '11_single_successful_delivery.log'), join(LOGS, '20_rejected.log')])];
  t.deepEqual(
    items.map((item) => (item.type === 'session' ? item.session : item)),
    [
      { clientIp: '89.247.252.52', messages: 1, rcptAccepted: 1, rcptRejected: 0, rcptUnknown: 0, envelopeSender: 'sender@mydomain.com' },
      { clientIp: '127.0.0.1', messages: 1, rcptAccepted: 1, rcptRejected: 0, rcptUnknown: 0, envelopeSender: 'sender@mydomain.com' },
      { clientIp: '30.207.11.100', messages: 1, rcptAccepted: 0, rcptRejected: 1, rcptUnknown: 0 },
    ],
  );
});

test('JSON Lines: bad lines skipped with reasons', (t) => {
  const file = join(tempFolder(), 'input.jsonl');
  writeFileSync(
    file,
    [
      '{"clientIp":"192.0.2.1","label":"spam"}',
      '{"kind":"ip","key":"192.0.2.2","counters":{"messages":3}}',
      '',
      'not json',
      '[1,2]',
      '{"kind":"host","key":"x"}',
      '{"kind":"ip","key":"192.0.2.3","counters":{"mesages":1}}',
      '{"kind":"ip","key":"192.0.2.3","counters":{"messages":-1}}',
      '{"kind":"ip","key":"192.0.2.3","counters":{}}',
    ].join('\n'),
  );
  const items = [...readInputs([file])];
  t.deepEqual(
    items.map((item) => [item.type, item.name.split(':').pop()]),
    [
      ['session', '1'],
      ['observation', '2'],
      ['skip', '4'],
      ['skip', '5'],
      ['skip', '6'],
      ['skip', '7'],
      ['skip', '8'],
      ['skip', '9'],
    ],
  );
  const reasons = items.filter((item) => item.type === 'skip').map((item) => (item.type === 'skip' ? item.reason : ''));
  t.regex(reasons[0]!, /^not JSON/);
  t.regex(reasons[1]!, /expected a JSON object, got an array/);
  t.regex(reasons[2]!, /kind must be one of ip, network, domain, user, got "host"/);
  t.regex(reasons[3]!, /unknown counter "mesages"/);
  t.regex(reasons[4]!, /counter messages must be a non-negative integer, got -1/);
  t.regex(reasons[5]!, /no counter above zero/);
});

test('mbox entries split and unquoted', (t) => {
  const file = join(tempFolder(), 'box.mbox');
  writeFileSync(file, 'From a@example.com Mon Jan  1 00:00:00 2024\nSubject: one\n\n>From the start\n\nFrom b@example.com Mon Jan  1 00:00:01 2024\nSubject: two\n\nbody\n');
  const items = [...readInputs([file])];
  t.is(items.length, 2);
  t.is(items[0]?.type === 'message' ? items[0].raw.toString() : '', 'Subject: one\n\nFrom the start\n\n');
  t.is(items[1]?.name, `${file}#2`);
});

test('message starting "From :" is no mbox', (t) => {
  t.is(detectFormat('sample.eml', Buffer.from('From : a@example.com\r\nSubject: x\r\n\r\nbody')), 'eml');
  t.is(detectFormat('sample', Buffer.from('From a@example.com Mon Jan  1 00:00:00 2024\nSubject: x\n\nbody')), 'mbox');
  t.is(detectFormat('x.log', Buffer.from('')), 'postfix');
  t.is(detectFormat('x.jsonl', Buffer.from('')), 'jsonl');
});

test('compressed input skipped with reason', (t) => {
  const items = [...readInputs([join(SHARED_DATA, 'mta-logs', 'lightmeter', 'complete.tar.gz')])];
  t.deepEqual(items.map((item) => (item.type === 'skip' ? item.reason : item.type)), ['gzip archive; unpack it and replay the files it contains']);
});

const badCommandLines: [string, string[]][] = [
  ['zero IMPs', ['--imps', '0']],
  ['negative rate', ['--rate', '-5']],
  ['unknown format', ['--format', 'pst']],
  ['unknown label', ['--label', 'evil']],
  ['unknown option', ['--speed', '3']],
];
for (const [name, args] of badCommandLines) {
  test(`replay command line: ${name}`, async (t) => {
    const error = (await t.throwsAsync(execFileAsync(process.execPath, [REPLAY_MAIN, '--bundles', tempFolder(), ...args]))) as unknown as { code: number; stderr: string };
    t.is(error.code, 2);
    t.regex(error.stderr, /ERR_CLI_USAGE|ERR_PARSE_ARGS/);
  });
}

test('replay of a missing input fails', async (t) => {
  const bundles = await bundlesFor(['imp-replay-missing']);
  const error = (await t.throwsAsync(
    execFileAsync(process.execPath, [REPLAY_MAIN, '--node', `127.0.0.1:${node.port}`, '--bundles', bundles, '--state', tempFolder(), join(tempFolder(), 'nothing-here')]),
  )) as unknown as { code: number; stderr: string };
  t.is(error.code, 1);
  t.regex(error.stderr, /ERR_REPLAY_INPUT: cannot read replay input/);
});
