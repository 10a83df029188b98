import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { ImpProtocolClient } from '../modules/protocol/client.js';
import { errorCodeFromWire } from '../modules/protocol/constants.js';
import { createCertificateRequest, loadServerTlsMaterial, signClientCertificate } from '../services/repository/tls-material.js';
import { cdrctl, connectClient, connectReady, enroll, removeNode, startNode, validHello, type ClientBundle, type TestNode } from './helpers/node.js';

let node: TestNode;
let bundle: ClientBundle;

test.before(async () => {
  node = await startNode();
  bundle = await enroll(node, 'imp-handshake');
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
});

test('hello accepted with node id, limits and last sequence', async (t) => {
  const client = await connectClient(node, bundle);
  const answer = await client.hello(validHello('imp-handshake'));

  t.truthy(answer.helloAccepted);
  t.regex(answer.helloAccepted!.nodeId ?? '', /^node-[0-9a-f]{8}$/);
  t.is(answer.helloAccepted!.protocolVersion, 1);
  t.is(answer.helloAccepted!.limits!.maxLookupKeys, 1000);
  t.is(answer.helloAccepted!.limits!.maxFrameBytes, 4 * 1024 * 1024);
  t.is(answer.helloAccepted!.lastSequence, 0);
  t.is(answer.helloAccepted!.policyVersion, 1);
  await client.close();
});

const refusals = [
  { name: 'OOS 2.4.9 too old', overrides: { oosVersion: '2.4.9' }, code: 'ERR_PROTO_OOS_TOO_OLD', text: /upgrade the IMP to OOS 2\.5/ },
  { name: 'OOS 1.9 too old', overrides: { oosVersion: '1.9' }, code: 'ERR_PROTO_OOS_TOO_OLD', text: /older than 2\.5/ },
  { name: 'E-series model E200', overrides: { model: 'E200' }, code: 'ERR_PROTO_MODEL_NOT_SUPPORTED', text: /E-series/ },
  { name: 'E-series model E-100', overrides: { model: 'E-100' }, code: 'ERR_PROTO_MODEL_NOT_SUPPORTED', text: /E-series/ },
  { name: 'IMP id not the certificate name', overrides: { impId: 'someone-else' }, code: 'ERR_PROTO_IMP_ID_MISMATCH', text: /issued to "imp-handshake"/ },
  { name: 'missing cluster id', overrides: { clusterId: '' }, code: 'ERR_PROTO_INVALID_HELLO', text: /clusterId/ },
  { name: 'unparsable OOS version', overrides: { oosVersion: 'latest' }, code: 'ERR_PROTO_INVALID_HELLO', text: /MAJOR\.MINOR/ },
  { name: 'protocol version 0', overrides: { protocolVersion: 0 }, code: 'ERR_PROTO_PROTOCOL_VERSION', text: /protocol version/ },
] as const;

for (const refusal of refusals) {
  test(`hello rejected: ${refusal.name}`, async (t) => {
    const client = await connectClient(node, bundle);
    const answer = await client.hello(validHello('imp-handshake', refusal.overrides));

    t.falsy(answer.helloAccepted);
    t.is(errorCodeFromWire(answer.helloRejected?.code), refusal.code);
    t.regex(answer.helloRejected?.message ?? '', refusal.text);
    await client.closed();
    t.true(client.socket.destroyed || client.socket.readableEnded);
  });
}

test('hello accepted at exactly OOS 2.5', async (t) => {
  const client = await connectClient(node, bundle);
  const answer = await client.hello(validHello('imp-handshake', { oosVersion: '2.5' }));
  t.truthy(answer.helloAccepted);
  await client.close();
});

test('request before hello closes with HANDSHAKE_REQUIRED', async (t) => {
  const client = await connectClient(node, bundle);
  const error = await t.throwsAsync(client.request({ heartbeat: { clientTimeMs: 1 } }));

  t.is((error as { code?: string }).code, 'ERR_PROTO_HANDSHAKE_REQUIRED');
  await client.closed();
});

test('certificate from another CA is rejected and the server keeps serving', async (t) => {
  const foreignDir = mkdtempSync(join(tmpdir(), 'imp-cdr-foreign-ca-'));
  try {
    await loadServerTlsMaterial(foreignDir, { generate: true, serverValidDays: 1, serverNames: ['127.0.0.1'] });
    const request = await createCertificateRequest('imp-handshake');
    const signed = await signClientCertificate(foreignDir, 'imp-handshake', request.csrPem, 1);

    const failure = await t.throwsAsync(async () => {
      const client = await ImpProtocolClient.connect({ host: '127.0.0.1', port: node.port, ca: bundle.ca, cert: signed.certificatePem, key: request.keyPem });
      // TLS 1.3 reports a rejected client certificate after the client's handshake completes.
      await client.hello(validHello('imp-handshake'));
    });
    t.truthy(failure);
  } finally {
    rmSync(foreignDir, { recursive: true, force: true });
  }

  const healthy = await connectReady(node, bundle, 'imp-handshake');
  const heartbeat = await healthy.request({ heartbeat: { clientTimeMs: 42 } });
  t.is(heartbeat.heartbeatAck?.clientTimeMs, 42);
  await healthy.close();
});

test('client without a certificate is rejected', async (t) => {
  await t.throwsAsync(async () => {
    const client = await ImpProtocolClient.connect({ host: '127.0.0.1', port: node.port, ca: bundle.ca, cert: '', key: '' });
    await client.hello(validHello('imp-handshake'));
  });
});

/** Runs `openssl s_client` against the node with the enrolled bundle; resolves with its output. */
async function openssl(args: string[]): Promise<{ code: number; output: string }> {
  const dir = join(node.dir, 'clients', 'imp-handshake');
  const command = ['s_client', '-connect', `127.0.0.1:${node.port}`, '-CAfile', join(dir, 'ca.pem'), '-cert', join(dir, 'client.pem'), '-key', join(dir, 'client.key'), ...args];
  return new Promise((resolveRun) => {
    const child = execFile('openssl', command, { timeout: 10_000 }, (error, stdout, stderr) => {
      resolveRun({ code: error ? Number((error as { code?: number }).code ?? 1) : 0, output: stdout + stderr });
    });
    child.stdin?.end();
  });
}

test('openssl verifies the server certificate over TLS 1.3', async (t) => {
  const result = await openssl(['-tls1_3', '-verify_return_error', '-servername', 'localhost']);
  t.regex(result.output, /New, TLSv1\.3/);
  t.regex(result.output, /Verify return code: 0 \(ok\)/);
});

test('openssl with TLS 1.2 is rejected', async (t) => {
  const result = await openssl(['-tls1_2']);
  t.not(result.code, 0);
  t.notRegex(result.output, /New, TLSv1\.2/);
});

test('openssl verifies enrolled certificate against CA', async (t) => {
  const dir = join(node.dir, 'clients', 'imp-handshake');
  const { stdout } = await promisify(execFile)('openssl', ['verify', '-CAfile', join(dir, 'ca.pem'), '-purpose', 'sslclient', join(dir, 'client.pem')]);
  t.regex(stdout, /client\.pem: OK/);
});

test('enroll with a bad name is a usage error', async (t) => {
  for (const name of ['../evil', 'imp 01', 'CN=foo,O=bar', 'x'.repeat(300)]) {
    const result = await cdrctl(node, ['client', 'enroll', name, '--out', join(node.dir, 'clients', 'bad')]);
    t.is(result.code, 2, name);
    t.regex(result.stderr, /invalid client name .*\(ERR_CLI_USAGE\)/, name);
    t.false(result.stderr.includes('x'.repeat(100)), 'a long name is shortened in the message');
  }
});
