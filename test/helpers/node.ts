/**
 * Starts real repository processes for tests and benchmarks: each gets its own temporary state folder,
 * a free port on 127.0.0.1, and its own control socket.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

import { ImpProtocolClient, type HelloOptions } from '../../modules/protocol/client.js';

const execFileAsync = promisify(execFile);

/** Top of the checkout: dist/test/helpers is three levels below it. */
export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const REPOSITORY_MAIN = join(ROOT, 'dist', 'services', 'repository', 'main.js');
export const CDRCTL_MAIN = join(ROOT, 'dist', 'services', 'cdrctl', 'main.js');
/** Real public data shipped beside the project, read in place and never copied. */
export const SHARED_DATA = resolve(ROOT, '..', 'shared', 'data');

export interface TestNode {
  dir: string;
  configPath: string;
  socketPath: string;
  port: number;
  replicationPort: number;
  /** UDP and TCP port of the DNS front, 0 when it is disabled. */
  dnsPort: number;
  process: ChildProcess;
  /** Every stdout and stderr line so far. */
  output: string[];
  /** SIGTERM, then wait for exit. */
  stop(): Promise<number | null>;
  /** SIGKILL, then wait for exit. */
  kill(): Promise<void>;
}

export interface StartOptions {
  /** Reuse an existing state folder, for restarts. */
  dir?: string;
  /** YAML lines appended to the generated configuration. */
  extraConfig?: string;
  /** Fixed port; 0 (default) picks a free one. */
  port?: number;
  /** Fixed replication port; 0 (default) picks a free one. */
  replicationPort?: number;
  /** Variables added to the daemon's environment, such as NOTIFY_SOCKET. */
  env?: NodeJS.ProcessEnv;
}

/** Writes a configuration under a temporary folder and starts a repository with it. */
export async function startNode(options: StartOptions = {}): Promise<TestNode> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'imp-cdr-test-'));
  const configPath = join(dir, 'cdr.yaml');
  if (!options.dir) {
    writeFileSync(
      configPath,
      [
        'paths:',
        '  state: .',
        '  run: run',
        'imp:',
        '  host: 127.0.0.1',
        `  port: ${options.port ?? 0}`,
        'replication:',
        '  host: 127.0.0.1',
        `  port: ${options.replicationPort ?? 0}`,
        'log:',
        '  level: info',
        // A free DNS port, so that tests running in parallel never share the development port 5353.
        /^dns:/m.test(options.extraConfig ?? '') ? '' : 'dns:\n  port: 0',
        options.extraConfig ?? '',
      ].join('\n'),
    );
  }
  return launch(dir, configPath, options.env);
}

/** Starts a repository on an existing state folder and configuration, as after a crash. */
export async function restartNode(previous: TestNode): Promise<TestNode> {
  return launch(previous.dir, previous.configPath);
}

async function launch(dir: string, configPath: string, env?: NodeJS.ProcessEnv): Promise<TestNode> {
  const child = spawn(process.execPath, [REPOSITORY_MAIN, '--config', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  });
  const output: string[] = [];
  let exitCode: number | null | undefined;
  const exited = new Promise<number | null>((resolveExit) =>
    child.once('exit', (code) => {
      exitCode = code;
      resolveExit(code);
    }),
  );

  const ready = new Promise<{ port: number; socketPath: string; replicationPort: number; dnsPort: number }>((resolveReady, rejectReady) => {
    const onLine = (line: string) => {
      output.push(line);
      if (line.includes('"repository ready"')) {
        const entry = JSON.parse(line) as { imp: string; control: string; replication: string; dns?: string };
        resolveReady({
          port: Number(entry.imp.split(':').pop()),
          socketPath: entry.control,
          replicationPort: Number(entry.replication.split(':').pop()),
          dnsPort: Number(entry.dns?.split(':').pop() || 0),
        });
      }
    };
    let buffered = { stdout: '', stderr: '' };
    for (const stream of ['stdout', 'stderr'] as const) {
      child[stream]!.on('data', (chunk: Buffer) => {
        const lines = (buffered[stream] + chunk.toString('utf8')).split('\n');
        buffered = { ...buffered, [stream]: lines.pop() ?? '' };
        lines.forEach(onLine);
      });
    }
    exited.then((code) => rejectReady(new Error(`repository exited with ${code} before it was ready:\n${output.join('\n')}`)));
    setTimeout(() => rejectReady(new Error(`repository not ready after 20 s:\n${output.join('\n')}`)), 20_000).unref();
  });

  const { port, socketPath, replicationPort, dnsPort } = await ready;
  return {
    dir,
    configPath,
    socketPath,
    port,
    replicationPort,
    dnsPort,
    process: child,
    output,
    async stop() {
      if (exitCode === undefined) {
        child.kill('SIGTERM');
      }
      return exited;
    },
    async kill() {
      if (exitCode === undefined) {
        child.kill('SIGKILL');
      }
      await exited;
    },
  };
}

/** Removes a node's state folder. */
export function removeNode(node: TestNode): void {
  rmSync(node.dir, { recursive: true, force: true });
}

/** Runs cdrctl against `node` and returns its exit code and output. */
export async function cdrctl(node: TestNode, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return runCdrctl(['--config', node.configPath, ...args]);
}

/** Runs cdrctl with `args` as given and returns its exit code and output. */
export async function runCdrctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CDRCTL_MAIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

export interface ClientBundle {
  ca: string;
  cert: string;
  key: string;
}

/** Enrolls `name` with `cdrctl client enroll` and reads the bundle it wrote. */
export async function enroll(node: TestNode, name: string): Promise<ClientBundle> {
  const out = join(node.dir, 'clients', name);
  const result = await cdrctl(node, ['client', 'enroll', name, '--out', out]);
  if (result.code !== 0) {
    throw new Error(`cdrctl client enroll failed: ${result.stderr}`);
  }
  return {
    ca: readFileSync(join(out, 'ca.pem'), 'utf8'),
    cert: readFileSync(join(out, 'client.pem'), 'utf8'),
    key: readFileSync(join(out, 'client.key'), 'utf8'),
  };
}

/** A Hello that the repository accepts for IMP `impId`. */
export function validHello(impId: string, overrides: Partial<HelloOptions> = {}): HelloOptions {
  return { impId, clusterId: 'cluster-test', model: 'M300', oosVersion: '2.6.1', moduleVersion: '0.1.0', ...overrides };
}

/** Connects over TLS without sending Hello. */
export function connectClient(node: TestNode, bundle: ClientBundle): Promise<ImpProtocolClient> {
  return ImpProtocolClient.connect({ host: '127.0.0.1', port: node.port, ...bundle });
}

/** Connects and completes the handshake; throws when Hello is not accepted. */
export async function connectReady(node: TestNode, bundle: ClientBundle, impId: string): Promise<ImpProtocolClient> {
  const client = await connectClient(node, bundle);
  const answer = await client.hello(validHello(impId));
  if (!answer.helloAccepted) {
    throw new Error(`Hello rejected: ${answer.helloRejected?.message ?? 'no answer'}`);
  }
  return client;
}
