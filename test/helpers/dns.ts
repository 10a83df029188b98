/**
 * DNS peers for tests and benchmarks: Debian's rbldnsd on 127.0.0.1, `dig` in batch mode, and free
 * UDP+TCP ports on 127.0.0.1.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

const execFileAsync = promisify(execFile);

/** Returns a port that is free on 127.0.0.1 for both UDP and TCP at the time of the call. */
export async function freeDnsPort(): Promise<number> {
  for (let attempt = 0; attempt < 20; attempt += 1) {
    const udp = createSocket('udp4');
    const port = await new Promise<number>((resolvePort) => udp.bind(0, '127.0.0.1', () => resolvePort(udp.address().port)));
    const tcp = createServer();
    const tcpFree = await new Promise<boolean>((resolveFree) => {
      tcp.once('error', () => resolveFree(false));
      tcp.listen(port, '127.0.0.1', () => resolveFree(true));
    });
    await new Promise<void>((resolveClosed) => udp.close(() => resolveClosed()));
    if (tcpFree) {
      await new Promise<void>((resolveClosed) => tcp.close(() => resolveClosed()));
      return port;
    }
  }
  throw new Error('no port free for both UDP and TCP on 127.0.0.1 after 20 attempts');
}

export interface Rbldnsd {
  port: number;
  process: ChildProcess;
  stop(): Promise<void>;
}

/** One rbldnsd zone: `zone:type:file` as its command line takes it. */
export interface RbldnsdZone {
  zone: string;
  type: string;
  file: string;
}

/**
 * Starts rbldnsd in the foreground on 127.0.0.1 with `zones`, as user rbldns (it refuses root), with
 * the default TTL `ttl` seconds. Resolves once it answers a SOA query on the first zone.
 */
export async function startRbldnsd(zones: RbldnsdZone[], ttl = 2100): Promise<Rbldnsd> {
  const port = await freeDnsPort();
  const args = ['-n', '-q', '-u', 'rbldns', '-t', String(ttl), '-b', `127.0.0.1/${port}`, ...zones.map((zone) => `${zone.zone}:${zone.type}:${zone.file}`)];
  const child = spawn('/usr/sbin/rbldnsd', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const output: string[] = [];
  child.stdout!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  child.stderr!.on('data', (chunk: Buffer) => output.push(chunk.toString()));
  const exited = new Promise<void>((resolveExit) => child.once('exit', () => resolveExit()));

  const deadline = Date.now() + 30_000;
  for (;;) {
    const { status } = (await digBatch(port, [{ name: zones[0]!.zone, type: 'SOA' }]).catch(() => [{ status: '' }]))[0]!;
    if (status === 'NOERROR' || status === 'REFUSED') {
      break;
    }
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`rbldnsd did not start on port ${port}: ${output.join('')}`);
    }
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
  }

  return {
    port,
    process: child,
    async stop() {
      if (child.exitCode === null) {
        child.kill('SIGTERM');
      }
      await exited;
    },
  };
}

export interface DigQuestion {
  name: string;
  type: string;
}

/** One answer as dig prints it: status and the answer records as "TYPE TTL DATA" strings, sorted. */
export interface DigResult {
  name: string;
  type: string;
  status: string;
  answers: string[];
}

/**
 * Runs `dig -f` for every question against 127.0.0.1:`port` and parses the status line and the
 * answer section of each. `tcp` sends the queries over TCP.
 */
export async function digBatch(port: number, questions: DigQuestion[], tcp = false): Promise<DigResult[]> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-dig-'));
  try {
    const batch = join(dir, 'batch');
    writeFileSync(batch, questions.map((question) => `${question.name} ${question.type}\n`).join(''));
    // Three tries: on a loaded machine one UDP datagram can miss dig's timeout, and a retried question
    // is answered from the server's cache, so it does not change what the tests count upstream.
    const { stdout } = await execFileAsync(
      'dig',
      ['@127.0.0.1', '-p', String(port), '+noall', '+comments', '+answer', '+tries=3', '+time=3', tcp ? '+tcp' : '+notcp', '-f', batch],
      { maxBuffer: 256 * 1024 * 1024 },
    );
    return parseDigOutput(stdout, questions);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function parseDigOutput(stdout: string, questions: DigQuestion[]): DigResult[] {
  const results: DigResult[] = [];
  let current: DigResult | undefined;
  let inAnswer = false;
  for (const line of stdout.split('\n')) {
    const header = /->>HEADER<<- opcode: \w+, status: (\w+)/.exec(line);
    if (header) {
      const question = questions[results.length];
      current = { name: question?.name ?? '', type: question?.type ?? '', status: header[1]!, answers: [] };
      results.push(current);
      inAnswer = false;
      continue;
    }
    if (line.startsWith(';; ANSWER SECTION:')) {
      inAnswer = true;
      continue;
    }
    if (line.startsWith(';') || line.trim() === '') {
      inAnswer = line.startsWith(';; ANSWER') ? true : inAnswer && line.trim() !== '' ? inAnswer : false;
      continue;
    }
    if (inAnswer && current) {
      const fields = line.split(/\s+/);
      // name TTL class type data...
      current.answers.push(`${fields[3]} ${fields[1]} ${fields.slice(4).join(' ')}`);
    }
  }
  for (const result of results) {
    result.answers.sort();
  }
  return results;
}
