import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { cdrctl, removeNode, SHARED_DATA, startNode, type TestNode } from './helpers/node.js';

const DROP = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror', 'drop.txt');

let node: TestNode;
let scratch: string;

interface Authority {
  caPath: string;
  keyPem: string;
  certPem: string;
}

/** Creates a CA with openssl and a server certificate for 127.0.0.1 that it signs. */
function createAuthority(name: string): Authority {
  const path = (file: string) => join(scratch, `${name}-${file}`);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name} test CA`, '-keyout', path('ca.key'), '-out', path('ca.pem')]);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=127.0.0.1', '-keyout', path('server.key'), '-out', path('server.csr')]);
  writeFileSync(path('ext.cnf'), 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n');
  openssl(['x509', '-req', '-in', path('server.csr'), '-CA', path('ca.pem'), '-CAkey', path('ca.key'), '-CAcreateserial', '-days', '2', '-extfile', path('ext.cnf'), '-out', path('server.pem')]);
  return { caPath: path('ca.pem'), keyPem: readFileSync(path('server.key'), 'utf8'), certPem: readFileSync(path('server.pem'), 'utf8') };
}

interface FeedServer {
  server: Server;
  url: string;
  state: { requests: number; conditional: number };
}

/** Starts an HTTPS server on 127.0.0.1 that serves the Spamhaus DROP list with an ETag and counts requests. */
async function startFeedServer(authority: Authority): Promise<FeedServer> {
  const body = readFileSync(DROP);
  const etag = '"drop-1"';
  const state = { requests: 0, conditional: 0 };
  const server = createServer({ key: authority.keyPem, cert: authority.certPem }, (request, response) => {
    state.requests += 1;
    if (request.headers['if-none-match'] === etag) {
      state.conditional += 1;
      response.writeHead(304);
      response.end();
      return;
    }
    response.writeHead(200, { etag, 'content-length': String(body.length) });
    response.end(body);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
  return { server, url: `https://127.0.0.1:${(server.address() as { port: number }).port}/drop.txt`, state };
}

function field(stdout: string, name: string): string {
  return new RegExp(`^${name}:\\s+(.*)$`, 'm').exec(stdout)?.[1] ?? '';
}

async function listedBy(ip: string, feed: string): Promise<boolean> {
  const lookup = JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', ip])).stdout) as { listings: { source: string }[] };
  return lookup.listings.some((listing) => listing.source === feed);
}

test.before(async () => {
  scratch = mkdtempSync(join(tmpdir(), 'imp-cdr-https-'));
  node = await startNode();
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
  rmSync(scratch, { recursive: true, force: true });
});

test.serial('HTTPS feed with a private CA', async (t) => {
  const trusted = createAuthority('feeds');
  const other = createAuthority('other');
  const { server, url, state } = await startFeedServer(trusted);
  try {
    const added = await cdrctl(node, ['feeds', 'add', 'drop-tls', url, 'iplist', '--refresh', '0', '--timeout', '5000', '--ca', trusted.caPath]);
    t.is(added.code, 0, added.stdout + added.stderr);
    t.regex(field(added.stdout, 'version'), /^1, imported \d+s ago$/);
    t.regex(field(added.stdout, 'entries'), /^989 \(0 exclusions\)/);
    t.is(field(added.stdout, 'ca'), 'feed CA certificates');
    t.is(state.requests, 1);
    t.true(await listedBy('1.10.16.1', 'drop-tls'));

    // An unchanged source responds to the conditional request with 304, and the version stays.
    const refreshed = await cdrctl(node, ['feeds', 'refresh', 'drop-tls']);
    t.is(refreshed.code, 0, refreshed.stdout);
    t.is(state.requests, 2);
    t.is(state.conditional, 1, 'the refresh sent If-None-Match');
    const status = (await cdrctl(node, ['feeds', 'status', 'drop-tls'])).stdout;
    t.regex(field(status, 'version'), /^1,/);
    t.regex(field(status, 'last success'), /ago by node-[0-9a-f]+ \(this node\), source unchanged$/);
    t.is(field(status, 'last error'), '-');

    // The server now presents a certificate of a CA the feed does not trust: the refresh fails and version 1 stays.
    server.setSecureContext({ key: other.keyPem, cert: other.certPem });
    const rejected = await cdrctl(node, ['feeds', 'refresh', 'drop-tls']);
    t.is(rejected.code, 1);
    t.regex(rejected.stdout, /ERR_FEED_TLS: GET https:\/\/127\.0\.0\.1:\d+\/drop\.txt: the server certificate does not verify \(UNABLE_TO_VERIFY_LEAF_SIGNATURE/);
    const afterReject = (await cdrctl(node, ['feeds', 'status', 'drop-tls'])).stdout;
    t.regex(field(afterReject, 'version'), /^1,/, 'version 1 stays in force');
    t.regex(field(afterReject, 'last error'), /^ERR_FEED_TLS: .* \(this node, \d+s ago\)$/);
    t.true(await listedBy('1.10.16.1', 'drop-tls'), 'lookups still use version 1');
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test.serial('HTTPS feed without its CA rejected', async (t) => {
  const authority = createAuthority('untrusted');
  const { server, url, state } = await startFeedServer(authority);
  try {
    const systemCas = await cdrctl(node, ['feeds', 'add', 'drop-system', url, 'iplist', '--refresh', '0', '--timeout', '5000']);
    t.is(systemCas.code, 1);
    t.regex(field(systemCas.stdout, 'last error'), /^ERR_FEED_TLS: .*the server certificate does not verify \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)/);
    t.regex(field(systemCas.stdout, 'last error'), /remove the feed and add it again with --ca FILE/);
    t.is(field(systemCas.stdout, 'version'), '0');
    t.is(state.requests, 0, 'no request reached the server');
    t.false(await listedBy('1.10.16.1', 'drop-system'));
  } finally {
    server.closeAllConnections();
    server.close();
  }
});

test.serial('CA option checked on add', async (t) => {
  const notPem = join(scratch, 'not-a-ca.pem');
  writeFileSync(notPem, 'this is not a certificate\n');
  const garbage = await cdrctl(node, ['feeds', 'add', 'bad-ca', 'https://127.0.0.1:9/drop.txt', 'iplist', '--ca', notPem]);
  t.is(garbage.code, 2);
  t.regex(garbage.stderr, /the CA file .*not-a-ca\.pem contains no PEM certificate/);

  // An empty file is not "no --ca": without the check the feed would trust the system CAs instead.
  const emptyPem = join(scratch, 'empty.pem');
  writeFileSync(emptyPem, '');
  const empty = await cdrctl(node, ['feeds', 'add', 'bad-ca', 'https://127.0.0.1:9/drop.txt', 'iplist', '--ca', emptyPem]);
  t.is(empty.code, 2);
  t.regex(empty.stderr, /the CA file .*empty\.pem contains no PEM certificate/);

  const brokenPem = join(scratch, 'broken.pem');
  writeFileSync(brokenPem, '-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n');
  const broken = await cdrctl(node, ['feeds', 'add', 'bad-ca', 'https://127.0.0.1:9/drop.txt', 'iplist', '--ca', brokenPem]);
  t.is(broken.code, 1);
  t.regex(broken.stderr, /feed caPem \(--ca\) must be PEM certificates that parse/);

  const authority = createAuthority('plain');
  const plainHttp = await cdrctl(node, ['feeds', 'add', 'bad-ca', 'http://127.0.0.1:9/drop.txt', 'iplist', '--ca', authority.caPath]);
  t.is(plainHttp.code, 1);
  t.regex(plainHttp.stderr, /feed caPem \(--ca\) must be empty unless the source is an https:\/\/ URL/);

  const missing = await cdrctl(node, ['feeds', 'add', 'bad-ca', 'https://127.0.0.1:9/drop.txt', 'iplist', '--ca', join(scratch, 'absent.pem')]);
  t.is(missing.code, 2);
  t.regex(missing.stderr, /cannot read the CA file/);

  const list = await cdrctl(node, ['feeds', 'list']);
  t.notRegex(list.stdout, /^bad-ca\t/m, 'no rejected definition was stored');
});
