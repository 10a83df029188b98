/**
 * Bytes on the wire per reported session: the IMP client module's aggregation (one observation per
 * object and interval) against sending one Observe per SMTP session, over the sessions that
 * phishing_pot yields. Counts application bytes written to the TLS socket (frames, before TLS record
 * overhead), without the Hello. Run with `make bench-imp-client`.
 */

import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { ImpClient } from '../modules/imp-client/index.js';
import type { SessionReport } from '../modules/imp-client/session.js';
import { readMessageFacts } from '../modules/imp-client/replay/message.js';
import { enroll, removeNode, SHARED_DATA, startNode, type ClientBundle, type TestNode } from '../test/helpers/node.js';

async function loadSessions(): Promise<SessionReport[]> {
  const folder = join(SHARED_DATA, 'email', 'phishing_pot');
  const sessions: SessionReport[] = [];
  for (const name of readdirSync(folder).sort()) {
    try {
      const facts = await readMessageFacts(readFileSync(join(folder, name)));
      sessions.push({
        clientIp: facts.clientIp,
        label: 'phish',
        ...(facts.envelopeSender ? { envelopeSender: facts.envelopeSender } : {}),
        ...(facts.fromDomain ? { fromDomain: facts.fromDomain } : {}),
        ...(facts.spf ? { spf: facts.spf } : {}),
        ...(facts.dkim ? { dkim: facts.dkim } : {}),
        ...(facts.dmarc ? { dmarc: facts.dmarc } : {}),
      });
    } catch {
      // Messages without a client address are not sessions.
    }
  }
  return sessions;
}

/** Reports `sessions` through a fresh client and returns the application bytes sent after the Hello. */
async function measure(node: TestNode, bundle: ClientBundle, impId: string, sessions: SessionReport[], flushEach: boolean): Promise<{ bytes: number; batches: number; observations: number }> {
  const stateDir = mkdtempSync(join(tmpdir(), 'imp-bench-'));
  const client = new ImpClient({ nodes: [`127.0.0.1:${node.port}`], tls: bundle, hello: { impId, clusterId: 'bench', model: 'M300', oosVersion: '2.6' }, stateDir });
  client.start();
  await client.waitConnected(5000);
  const helloBytes = client.stats().bytesSent;

  for (const [index, session] of sessions.entries()) {
    client.report(session);
    if (flushEach) client.flush();
    // Waiting now and then keeps the spool below its 10,000-batch limit, so nothing is dropped.
    if (flushEach && index % 1000 === 999) await client.drain(60_000);
  }
  client.flush();
  await client.drain(60_000);
  const stats = client.stats();
  await client.stop();
  rmSync(stateDir, { recursive: true, force: true });
  if (stats.batchesDropped > 0) throw new Error(`${stats.batchesDropped} batches dropped; the measurement is void`);
  return { bytes: stats.bytesSent - helloBytes, batches: stats.batchesAcknowledged, observations: stats.observationsSpooled };
}

const node = await startNode();
try {
  const sessions = await loadSessions();
  const repeated = Array.from({ length: 10 }, () => sessions).flat();
  const rows: string[] = [];
  const cases: [string, SessionReport[], boolean][] = [
    ['one Observe per session', sessions, true],
    ['aggregated, one interval', sessions, false],
    ['one Observe per session, 10x traffic', repeated, true],
    ['aggregated, 10x traffic', repeated, false],
  ];
  let index = 0;
  for (const [name, input, flushEach] of cases) {
    const impId = `imp-bench-${index++}`;
    const bundle = await enroll(node, impId);
    const result = await measure(node, bundle, impId, input, flushEach);
    rows.push(`| ${name} | ${input.length} | ${result.batches} | ${result.observations} | ${result.bytes} | ${(result.bytes / input.length).toFixed(1)} |`);
  }
  process.stdout.write(['| case | sessions | batches | observations | bytes sent | bytes per session |', '| --- | ---: | ---: | ---: | ---: | ---: |', ...rows, ''].join('\n'));
} finally {
  await node.stop();
  removeNode(node);
}
