/**
 * Starts a repository and its pairing daemon (imp-cdr-pairing) as real processes on 127.0.0.1, for the
 * pairing tests.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { CDRCTL_MAIN, ROOT, startNode, type TestNode } from './node.js';

const execFileAsync = promisify(execFile);

export const PAIRING_MAIN = join(ROOT, 'dist', 'services', 'pairing', 'main.js');

export interface PairingDaemonProcess {
  process: ChildProcess;
  port: number;
  fingerprint: string;
  output: string[];
  /** SIGTERM, then wait for exit. */
  stop(): Promise<number | null>;
}

export interface PairingNode {
  node: TestNode;
  daemon: PairingDaemonProcess;
  /** Port of the repository's replication listener. */
  replicationPort: number;
}

/** Returns a TCP port that was free on 127.0.0.1 a moment ago. */
export function freePort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const server = createServer();
    server.once('error', rejectPort);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
  });
}

/**
 * Starts a repository and a pairing daemon sharing one configuration. `pairingConfig` adds lines to the
 * `pairing` section; `replicationPort` replaces the free port the repository advertises; `nodeId` sets
 * the node id instead of generating one.
 */
export async function startPairingNode(
  options: { pairingConfig?: string[]; replicationPort?: number; nodeId?: string } = {},
): Promise<PairingNode> {
  const replicationPort = options.replicationPort ?? (await freePort());
  const pairingConfig = options.pairingConfig ?? [];
  const node = await startNode({
    replicationPort,
    extraConfig: [
      ...(options.nodeId ? ['node:', `  id: ${options.nodeId}`] : []),
      'pairing:',
      '  host: 127.0.0.1',
      '  port: 0',
      '  connectTimeoutMs: 5000',
      ...pairingConfig.map((line) => `  ${line}`),
    ].join('\n'),
  });
  return { node, daemon: await startPairingDaemon(node), replicationPort };
}

/** Starts imp-cdr-pairing with the configuration of `node` and waits for its "pairing ready" line. */
export async function startPairingDaemon(node: TestNode): Promise<PairingDaemonProcess> {
  const child = spawn(process.execPath, [PAIRING_MAIN, '--config', node.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolveExit(code);
    }),
  );

  const ready = new Promise<{ port: number; fingerprint: string }>((resolveReady, rejectReady) => {
    let buffered = '';
    const onData = (chunk: Buffer) => {
      const lines = (buffered + chunk.toString('utf8')).split('\n');
      buffered = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        if (line.includes('"pairing ready"')) {
          const entry = JSON.parse(line) as { listen: string; fingerprint: string };
          resolveReady({ port: Number(entry.listen.split(':').pop()), fingerprint: entry.fingerprint });
        }
      }
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    exited.then((code) => rejectReady(new Error(`pairing daemon exited with ${code} before it was ready:\n${output.join('\n')}`)));
    setTimeout(() => rejectReady(new Error(`pairing daemon not ready after 20 s:\n${output.join('\n')}`)), 20_000).unref();
  });

  const { port, fingerprint } = await ready;
  return {
    process: child,
    port,
    fingerprint,
    output,
    get exitCode() {
      return exitCode;
    },
    async stop() {
      if (exitCode === undefined) child.kill('SIGTERM');
      return exited;
    },
  } as PairingDaemonProcess;
}

export interface CommandResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs cdrctl with the configuration of `node`; `input` is written to its standard input. */
export function cdrctlWithInput(node: TestNode, args: string[], input = ''): Promise<CommandResult> {
  return new Promise((resolveRun) => {
    const child = spawn(process.execPath, [CDRCTL_MAIN, '--config', node.configPath, ...args], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
    child.stdin.on('error', () => undefined);
    child.stdin.end(input);
    child.once('exit', (code) => resolveRun({ code: code ?? -1, stdout, stderr }));
  });
}

/** Returns the contents of `peer.json`, or null when the node is not paired. */
export function peerFile(node: TestNode): string | null {
  const path = join(node.dir, 'peer.json');
  return existsSync(path) ? readFileSync(path, 'utf8') : null;
}

/** Returns the error code cdrctl printed at the end of its error line, such as "ERR_PAIR_CODE_INVALID". */
export function errorCode(result: CommandResult): string | undefined {
  return /\((ERR_[A-Z_]+)\)\s*$/m.exec(result.stderr)?.[1];
}

/** Runs an OpenSSH command line tool and returns its exit code and output. */
export async function runTool(file: string, args: string[], input?: string): Promise<CommandResult> {
  try {
    const child = execFileAsync(file, args, { timeout: 20_000 });
    if (input !== undefined) {
      child.child.stdin?.end(input);
    }
    const { stdout, stderr } = await child;
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: typeof failed.code === 'number' ? failed.code : -1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}
