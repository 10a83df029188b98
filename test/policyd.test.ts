import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { kindToWire } from '../modules/protocol/constants.js';
import { MAX_REQUEST_BYTES } from '../modules/imp-client/policyd/policy-server.js';
import { freePort, waitFor } from './helpers/imp-client.js';
import { cdrctl, connectReady, enroll, removeNode, ROOT, startNode, type TestNode } from './helpers/node.js';

const POLICYD_MAIN = join(ROOT, 'dist', 'modules', 'imp-client', 'bin', 'imp-cdr-policyd.js');
const UNAVAILABLE = 'DEFER_IF_PERMIT reputation unavailable';

let node: TestNode;
let policyd: ChildProcess;
let policyPort: number;
let folder: string;
const output: string[] = [];

test.before(async () => {
  node = await startNode();
  folder = mkdtempSync(join(tmpdir(), 'imp-policyd-test-'));
  await cdrctl(node, ['client', 'enroll', 'imp-policyd', '--out', join(folder, 'bundle')]);
  policyPort = await freePort();
  writeFileSync(
    join(folder, 'imp.yaml'),
    [
      'paths:',
      '  state: .',
      'impClient:',
      `  nodes: ["127.0.0.1:${node.port}"]`,
      '  bundleDir: bundle',
      '  intervalSeconds: 1',
      'policyd:',
      `  port: ${policyPort}`,
      `  unavailable: ${UNAVAILABLE}`,
      '',
    ].join('\n'),
  );
  policyd = spawn(process.execPath, [POLICYD_MAIN, '--config', join(folder, 'imp.yaml')], { stdio: ['ignore', 'pipe', 'pipe'] });
  policyd.stdout!.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n')));
  policyd.stderr!.on('data', (chunk: Buffer) => output.push(...chunk.toString('utf8').split('\n')));
  await waitFor(() => output.some((line) => line.includes('"connected to repository node"')) && output.some((line) => line.includes('"policyd ready"')), 20_000, 'policyd start');
});

test.after.always(async () => {
  policyd?.kill('SIGTERM');
  await node?.stop();
  if (node) removeNode(node);
  rmSync(folder, { recursive: true, force: true });
});

/** Sends `requests` on one connection and returns the raw text received once `responses` responses arrived. */
async function exchange(requests: string[], responses = requests.length): Promise<string> {
  const socket: Socket = connect(policyPort, '127.0.0.1');
  let received = '';
  socket.setEncoding('utf8');
  socket.on('data', (chunk: string) => (received += chunk));
  await new Promise((resolveConnect) => socket.once('connect', resolveConnect));
  for (const request of requests) socket.write(request);
  await waitFor(() => received.split('\n\n').length - 1 >= responses, 5000, `${responses} responses`);
  socket.end();
  return received;
}

function request(state: string, clientAddress: string, instance: string, extra: string[] = []): string {
  return [
    'request=smtpd_access_policy',
    `protocol_state=${state}`,
    'protocol_name=ESMTP',
    `client_address=${clientAddress}`,
    'client_name=unknown',
    'helo_name=mail.example.com',
    'sender=alice@policy.example.com',
    'recipient=bob@example.org',
    `instance=${instance}`,
    ...extra,
    '',
    '',
  ].join('\n');
}

async function counters(ip: string): Promise<Record<string, unknown>> {
  const reader = await enroll(node, 'imp-policyd-reader');
  const client = await connectReady(node, reader, 'imp-policyd-reader');
  const answer = await client.request({ lookup: { keys: [{ kind: kindToWire('ip'), key: ip }] } });
  await client.close();
  return (answer.lookupResponse?.results?.[0]?.reputation?.counters ?? {}) as Record<string, unknown>;
}

test.serial('neutral client gets DUNNO exactly', async (t) => {
  t.is(await exchange([request('RCPT', '198.51.100.60', 'a1.1')]), 'action=DUNNO\n\n');
});

test.serial('malicious client gets REJECT exactly', async (t) => {
  const reporter = await enroll(node, 'imp-policyd-seed');
  const client = await connectReady(node, reporter, 'imp-policyd-seed');
  await client.request({
    observe: { sequence: 1, observations: [{ object: { kind: kindToWire('ip'), key: '203.0.113.61' }, intervalStartMs: Date.now(), counters: { messages: 60, phish: 60 } }] },
  });
  await client.close();

  t.is(await exchange([request('RCPT', '203.0.113.61', 'b1.1')]), 'action=REJECT Client host rejected by reputation\n\n');
  t.is(await exchange([request('RCPT', '::ffff:203.0.113.61', 'b1.2')]), 'action=REJECT Client host rejected by reputation\n\n');
});

test.serial('transaction reported at DATA', async (t) => {
  const answers = await exchange([
    request('RCPT', '198.51.100.62', 'c1.1'),
    request('RCPT', '198.51.100.62', 'c1.1', ['recipient_count=1']),
    request('DATA', '198.51.100.62', 'c1.1', ['recipient_count=2']),
  ]);
  t.is(answers, 'action=DUNNO\n\naction=DUNNO\n\naction=DUNNO\n\n');

  // The session reaches the repository when its one-second interval closes.
  let seen: Record<string, unknown> = {};
  for (let attempt = 0; attempt < 50 && Number(seen['messages'] ?? 0) === 0; attempt += 1) {
    seen = await counters('198.51.100.62');
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }
  t.is(Number(seen['connections']), 1);
  t.is(Number(seen['messages']), 1);
  t.is(Number(seen['rcptAccepted']), 2);
});

const badRequests: [string, string][] = [
  ['line without equals', 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address 192.0.2.1\n\n'],
  ['wrong request type', 'request=junk\nprotocol_state=RCPT\nclient_address=192.0.2.1\n\n'],
  ['missing request type', 'protocol_state=RCPT\nclient_address=192.0.2.1\n\n'],
  ['client address not an IP', 'request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=unknown\n\n'],
  ['missing client address', 'request=smtpd_access_policy\nprotocol_state=RCPT\n\n'],
];
for (const [name, text] of badRequests) {
  test.serial(`bad policy request: ${name}`, async (t) => {
    t.is(await exchange([text]), `action=${UNAVAILABLE}\n\n`);
  });
}

test.serial('connection survives a bad request', async (t) => {
  const answers = await exchange(['request=junk\n\n', request('RCPT', '198.51.100.63', 'd1.1')]);
  t.is(answers, `action=${UNAVAILABLE}\n\naction=DUNNO\n\n`);
});

test.serial('request size limit is exact', async (t) => {
  const head = 'request=smtpd_access_policy\n';
  const atLimit = head + 'y'.repeat(MAX_REQUEST_BYTES - head.length);
  // Exactly MAX_REQUEST_BYTES without the empty line keeps the connection open, so the response follows.
  t.is(await exchange([atLimit, '\n\n'], 1), `action=${UNAVAILABLE}\n\n`);

  const socket = connect(policyPort, '127.0.0.1');
  await new Promise((resolveConnect) => socket.once('connect', resolveConnect));
  const closed = new Promise((resolveClose) => socket.once('close', resolveClose));
  socket.on('error', () => undefined);
  socket.write(atLimit + 'y');
  await closed;
  t.true(output.some((line) => line.includes(`exceeds ${MAX_REQUEST_BYTES} bytes`)));
});
