/**
 * Benchmarks the DNS front against rbldnsd on the same zone files, and the query-through cache with
 * 8 simulated IMPs, with dnsperf on 127.0.0.1. Prints the figures as Markdown.
 *
 * Run with `make bench-dns` (after `apt-get install dnsperf rbldnsd`).
 */

import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { startRbldnsd } from '../test/helpers/dns.js';
import { cdrctl, removeNode, SHARED_DATA, startNode } from '../test/helpers/node.js';
import { startUpstreamDnsbl } from '../test/helpers/upstream-dnsbl.js';

const execFileAsync = promisify(execFile);
const DNSBL = join(SHARED_DATA, 'dnsbl', 'uninvitedactivity-mirror');
const SECONDS = 10;

const ZONES = [
  { zone: 'dnsbl-1.bench', file: join(DNSBL, 'dnsbl-1.uceprotect.net') },
  { zone: 'dnsbl-2.bench', file: join(DNSBL, 'dnsbl-2.uceprotect.net') },
  { zone: 'backscatterer.bench', file: join(DNSBL, 'ips.backscatterer.org') },
];

interface DnsperfResult {
  queries: number;
  qps: number;
  latencyMs: number;
  lost: number;
}

async function dnsperf(port: number, queryFile: string, clients: number, seconds: number): Promise<DnsperfResult> {
  const { stdout } = await execFileAsync('dnsperf', ['-s', '127.0.0.1', '-p', String(port), '-d', queryFile, '-l', String(seconds), '-c', String(clients), '-q', '100'], {
    maxBuffer: 16 * 1024 * 1024,
  });
  const number = (pattern: RegExp) => Number(pattern.exec(stdout)?.[1] ?? NaN);
  return {
    queries: number(/Queries completed:\s+(\d+)/),
    qps: number(/Queries per second:\s+([\d.]+)/),
    latencyMs: number(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
    lost: number(/Queries lost:\s+(\d+)/),
  };
}

/** Half listed addresses from the files, half addresses next to them (mostly not listed). */
function queryLines(count: number): string[] {
  const lines: string[] = [];
  const perZone = Math.ceil(count / ZONES.length / 2);
  for (const { zone, file } of ZONES) {
    const addresses = readFileSync(file, 'latin1')
      .split('\n')
      .map((line) => line.trim().split(/\s+/)[0] ?? '')
      .filter((entry) => /^\d+\.\d+\.\d+\.\d+$/.test(entry));
    const step = Math.max(1, Math.floor(addresses.length / perZone));
    for (let index = 0; index < addresses.length && lines.length < count; index += step) {
      const octets = addresses[index]!.split('.');
      lines.push(`${[...octets].reverse().join('.')}.${zone} A`);
      const neighbour = [...octets.slice(0, 3), String((Number(octets[3]) + 1) % 256)];
      lines.push(`${neighbour.reverse().join('.')}.${zone} TXT`);
    }
  }
  return lines;
}

async function benchFront(work: string): Promise<string[]> {
  const queryFile = join(work, 'queries.txt');
  const lines = queryLines(20_000);
  writeFileSync(queryFile, `${lines.join('\n')}\n`);

  const rbldnsd = await startRbldnsd(ZONES.map(({ zone, file }) => ({ zone, type: 'ip4set', file })));
  const node = await startNode();
  try {
    for (const [index, { zone, file }] of ZONES.entries()) {
      const added = await cdrctl(node, ['feeds', 'add', `bench-${index}`, file, 'ip4set', '--zone', zone, '--refresh', '0']);
      if (added.code !== 0) {
        throw new Error(`adding ${file} failed: ${added.stdout}${added.stderr}`);
      }
    }
    // One short warm-up each, then the measured runs one after the other, so they do not share the CPU.
    await dnsperf(rbldnsd.port, queryFile, 1, 2);
    await dnsperf(node.dnsPort, queryFile, 1, 2);
    const theirs = await dnsperf(rbldnsd.port, queryFile, 1, SECONDS);
    const ours = await dnsperf(node.dnsPort, queryFile, 1, SECONDS);
    return [
      `Query file: ${lines.length} names over ${ZONES.length} ip4set zones (UCEPROTECT level 1 and 2, Backscatterer), A and TXT, half listed.`,
      '',
      '| server | queries/s | average latency (ms) | queries lost |',
      '| --- | --- | --- | --- |',
      `| rbldnsd 1.0pre (Debian) | ${theirs.qps.toFixed(0)} | ${theirs.latencyMs.toFixed(3)} | ${theirs.lost} |`,
      `| IMP-CDR DNS front | ${ours.qps.toFixed(0)} | ${ours.latencyMs.toFixed(3)} | ${ours.lost} |`,
      '',
      `Ratio IMP-CDR / rbldnsd: ${(ours.qps / theirs.qps).toFixed(2)}.`,
    ];
  } finally {
    await rbldnsd.stop();
    await node.stop();
    removeNode(node);
  }
}

async function benchQueryThrough(work: string): Promise<string[]> {
  const zone = 'zen.bench';
  const upstream = await startUpstreamDnsbl(zone, 300);
  const keys = 2000;
  for (let index = 0; index < keys; index += 2) {
    upstream.records.set(`${index % 250}.${Math.floor(index / 250)}.2.10.${zone}`, { a: ['127.0.0.2'], ttl: 3600 });
  }
  const node = await startNode({
    extraConfig: ['dnsbl:', `  resolvers: ["127.0.0.1:${upstream.port}"]`, '  lists:', `    - zone: ${zone}`].join('\n'),
  });
  try {
    // Each simulated IMP asks every key once, in its own order.
    const queryFile = join(work, 'imp-queries.txt');
    const names = Array.from({ length: keys }, (_, index) => `${index % 250}.${Math.floor(index / 250)}.2.10.${zone} A`);
    writeFileSync(queryFile, `${names.join('\n')}\n`);
    const runs = await Promise.all(
      Array.from({ length: 8 }, async () => {
        const { stdout } = await execFileAsync('dnsperf', ['-s', '127.0.0.1', '-p', String(node.dnsPort), '-d', queryFile, '-n', '1', '-q', '20'], { maxBuffer: 16 * 1024 * 1024 });
        return Number(/Queries completed:\s+(\d+)/.exec(stdout)?.[1] ?? 0);
      }),
    );
    const asked = runs.reduce((sum, count) => sum + count, 0);
    const sent = upstream.total();
    return [
      `8 simulated IMPs (8 dnsperf processes at once, \`-n 1\`) each ask the same ${keys} names (half listed) through the DNS front.`,
      '',
      '| queries answered | upstream queries | saved |',
      '| --- | --- | --- |',
      `| ${asked} | ${sent} | ${(((asked - sent) / asked) * 100).toFixed(1)} % |`,
    ];
  } finally {
    await node.stop();
    removeNode(node);
    await upstream.close();
  }
}

const work = mkdtempSync(join(tmpdir(), 'imp-cdr-bench-'));
try {
  const front = await benchFront(work);
  const through = await benchQueryThrough(work);
  const lines = [
    `Machine: ${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), Node.js ${process.version}, ${new Date().toISOString().slice(0, 10)}.`,
    '',
    `### DNS front against rbldnsd (dnsperf, 1 client, ${SECONDS} s each)`,
    '',
    ...front,
    '',
    '### Query-through cache, 8 IMPs',
    '',
    ...through,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
