/**
 * Helpers for tests of the IMP client module: a free loopback port, a second repository node that
 * shares the first one's CA (so one client bundle works for both), and waiting on a condition.
 */

import { copyFileSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { startNode, type TestNode } from './node.js';

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', resolveListen));
  const port = (server.address() as { port: number }).port;
  await new Promise<void>((resolveClose) => server.close(() => resolveClose()));
  return port;
}

/** Starts a node on `port` (0 for a free one) that uses the CA and server certificate of `first`. */
export async function startSiblingNode(first: TestNode, port = 0): Promise<TestNode> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-test-'));
  mkdirSync(join(dir, 'tls'), { mode: 0o700 });
  for (const file of ['ca.pem', 'ca.key', 'server.pem', 'server.key']) {
    copyFileSync(join(first.dir, 'tls', file), join(dir, 'tls', file));
  }
  writeFileSync(join(dir, 'cdr.yaml'), ['paths:', '  state: .', '  run: run', 'imp:', '  host: 127.0.0.1', `  port: ${port}`, 'replication:', '  port: 0', 'dns:', '  port: 0', 'log:', '  level: info', ''].join('\n'));
  return startNode({ dir });
}

/** Polls `condition` every 10 ms until it is true; throws after `timeoutMs`. */
export async function waitFor(condition: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 10));
  }
}
