/**
 * `make bench`: throughput of a real repository process, and of Redis for the equivalent operations, on
 * this machine over loopback.
 *
 * The repository runs as its own process with a temporary state folder (test/helpers/node.ts). The
 * benchmark client is this process and talks the native protocol over TLS 1.3 with an enrolled client
 * certificate. Redis runs as a `redis-server` that this script starts on 127.0.0.1 with a free port and
 * a temporary folder, and stops at the end. When `redis-server` is not installed, the Redis rows are
 * skipped with a message and the IMP-CDR rows are still measured.
 *
 * Each IMP-CDR scenario runs right before its Redis counterpart, so that both see the same load from
 * other processes. The table reports that load per scenario, as CPU cores used by processes other than
 * the benchmark, the repository and redis-server.
 *
 * Keys are real IPv4 addresses (PSBL and NiXSpam lists) and domains (disposable e-mail domains), read in
 * place from SHARED_DATA. Every scenario stops after SCENARIO_MS or its request count, whichever comes
 * first, and the whole run is aborted after RUN_TIMEOUT_MS. bench/RESULTS.md records a run.
 */

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { availableParallelism, loadavg, release, tmpdir, totalmem } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';

import { Redis } from 'ioredis';

import type { ImpProtocolClient } from '../modules/protocol/client.js';
import { kindToWire, proto, type ObjectKindName } from '../modules/protocol/constants.js';
import type { impcdr } from '../modules/protocol/generated/messages.js';
import { normaliseKey } from '../services/repository/keys.js';
import { cdrctl, connectReady, enroll, removeNode, SHARED_DATA, startNode, type TestNode } from '../test/helpers/node.js';

/** Measured time of one scenario, in milliseconds. */
const SCENARIO_MS = 3000;
/** Time each warm-up loop runs before a scenario is measured, in milliseconds. Its figures are dropped. */
const WARMUP_MS = 500;
/** Upper bound on requests in one scenario, so every loop is bounded in count as well as in time. */
const MAX_REQUESTS = 1_000_000;
/** Extra time after SCENARIO_MS after which a scenario counts as hung and the run fails, in milliseconds. */
const SCENARIO_TIMEOUT_MS = SCENARIO_MS + 30_000;
/** The whole run is aborted after this time, in milliseconds. */
const RUN_TIMEOUT_MS = 5 * 60_000;

/** Requests in flight on one connection for the pipelined lookups. It equals the repository's default maxInFlight. */
const PIPELINED_IN_FLIGHT = 64;
const LOOKUP_BATCH_SIZES = [100, 1000] as const;
/** Concurrent connections of the Observe scenarios, each with its own IMP id and one batch in flight. */
const OBSERVE_CONNECTIONS = 8;
const OBSERVE_BATCH_SIZES = [1, 100, 1000] as const;
/** Observations per batch when the index is filled before the lookups. */
const SEED_BATCH_SIZE = 1000;

/** Keys looked up again and again, so they stay cached. The cold scenarios split the rest of the pool. */
const WARM_KEY_COUNT = 1000;
/** Share of the non-warm keys that the cold 100-key scenario gets. The cold 1000-key scenario gets the rest. */
const COLD_100_SHARE = 0.45;

/** Key lists under SHARED_DATA: PSBL and NiXSpam sender addresses, disposable e-mail domains. */
const IPV4_SOURCES = ['dnsbl/uninvitedactivity-mirror/psbl.txt', 'dnsbl/uninvitedactivity-mirror/derived/nixspam-ip.txt'];
const DOMAIN_SOURCES = ['domains/disposable-email-domains/disposable_email_blocklist.conf'];

/** Seed of the key shuffle, so that every run uses the same keys in the same order. */
const SHUFFLE_SEED = 0x1badb002;

type SystemName = 'IMP-CDR' | 'Redis';
type AppendFsync = 'always' | 'everysec' | 'no';

interface BenchKey {
  kind: ObjectKindName;
  /** Normalised key, as the repository stores it. */
  key: string;
  wire: impcdr.v1.IObjectKey;
}

interface LoopOptions {
  /** Concurrent request loops. Each waits for its response before it sends the next request. */
  workers: number;
  maxRequests: number;
  durationMs: number;
  /** Sends request number `index` from loop `worker` and resolves with the items it carried. */
  send: (index: number, worker: number) => Promise<number>;
}

interface LoopResult {
  requests: number;
  /** Keys looked up or observations counted. */
  items: number;
  seconds: number;
  latenciesMs: Float64Array;
}

interface CacheCounts {
  hits: number;
  misses: number;
}

interface MeasureOptions extends Omit<LoopOptions, 'durationMs'> {
  /** False skips the warm-up loop, for scenarios whose keys may be used only once. */
  warmup?: boolean;
  /** Reads the repository's cache counters, so that the result reports the cache hit ratio. */
  readCacheCounts?: () => Promise<CacheCounts>;
}

interface Measurement extends LoopResult {
  id: string;
  system: SystemName;
  operation: string;
  itemName: 'keys' | 'observations';
  /** Average CPU cores used by other processes while the scenario ran. */
  otherCores: number;
  /** Share of lookups served from the repository's reputation cache, 0 to 1, where it was read. */
  cacheHitRatio?: number;
}

/** A pair of rows to compare, by measurement id. */
interface Comparison {
  label: string;
  impId: string;
  redisId: string;
}

/** Processes and folders to remove when the run ends or is aborted, removed last-in first-out. */
const cleanups: (() => Promise<void>)[] = [];
/** Processes whose CPU time counts as the benchmark's own. */
const measuredPids: number[] = [process.pid];
/** Log lines of the repository, printed when the run fails. */
let repositoryLog: string[] = [];

function print(line = ''): void {
  process.stdout.write(`${line}\n`);
}

// ---- Measurement ----------------------------------------------------------------------------------

/** Runs `options.workers` closed request loops until the time or the request count runs out. */
async function runClosedLoop(options: LoopOptions): Promise<LoopResult> {
  const latenciesMs = new Float64Array(options.maxRequests);
  let issued = 0;
  let items = 0;
  const start = performance.now();
  const deadline = start + options.durationMs;

  const loop = async (worker: number): Promise<void> => {
    while (issued < options.maxRequests && performance.now() < deadline) {
      const index = issued;
      issued += 1;
      const sentAt = performance.now();
      // Awaited before the addition: `items += await ...` would read `items` before the await and lose
      // the counts that other loops added meanwhile.
      const carried = await options.send(index, worker);
      latenciesMs[index] = performance.now() - sentAt;
      items += carried;
    }
  };
  await Promise.all(Array.from({ length: options.workers }, (_, worker) => loop(worker)));

  const seconds = (performance.now() - start) / 1000;
  return { requests: issued, items, seconds, latenciesMs: latenciesMs.subarray(0, issued) };
}

/** Rejects when `promise` has not settled within `timeoutMs`. */
async function withTimeout<T>(promise: Promise<T>, timeoutMs: number, description: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, rejectTimeout) => {
    timer = setTimeout(() => rejectTimeout(new Error(`${description} timed out after ${timeoutMs} ms`)), timeoutMs);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** CPU time from /proc, in clock ticks: the whole machine, its busy part, and the measured processes. */
interface CpuSample {
  machineTotal: number;
  machineBusy: number;
  measured: number;
}

function readCpuSample(): CpuSample {
  // First line of /proc/stat: cpu user nice system idle iowait irq softirq steal guest guest_nice.
  const fields = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const [user, nice, system, idle, iowait, irq, softirq, steal] = fields as [number, number, number, number, number, number, number, number];
  const machineBusy = user + nice + system + irq + softirq + steal;

  let measured = 0;
  for (const pid of measuredPids) {
    try {
      // Fields after the command name, which may contain spaces, start at field 3 (state). utime and
      // stime are fields 14 and 15.
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const after = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      measured += Number(after[11]) + Number(after[12]);
    } catch {
      // The process has exited, so it used no CPU during the scenario.
    }
  }
  return { machineTotal: machineBusy + idle + iowait, machineBusy, measured };
}

/** Returns the average CPU cores that other processes used between two samples. */
function otherCoresBetween(before: CpuSample, after: CpuSample): number {
  const total = after.machineTotal - before.machineTotal;
  if (total <= 0) {
    return 0;
  }
  const other = after.machineBusy - before.machineBusy - (after.measured - before.measured);
  return Math.max(0, (other / total) * availableParallelism());
}

/** Runs a warm-up loop (unless `warmup` is false), then the measured loop, and prints the result line. */
async function measure(
  system: SystemName,
  id: string,
  operation: string,
  itemName: Measurement['itemName'],
  options: MeasureOptions,
): Promise<Measurement> {
  if (options.warmup !== false) {
    await withTimeout(runClosedLoop({ ...options, durationMs: WARMUP_MS }), SCENARIO_TIMEOUT_MS, `${system} ${operation} (warm-up)`);
  }

  const cacheBefore = await options.readCacheCounts?.();
  const cpuBefore = readCpuSample();
  const result = await withTimeout(runClosedLoop({ ...options, durationMs: SCENARIO_MS }), SCENARIO_TIMEOUT_MS, `${system} ${operation}`);
  const cpuAfter = readCpuSample();
  const cacheAfter = await options.readCacheCounts?.();

  const measurement: Measurement = { id, system, operation, itemName, ...result, otherCores: otherCoresBetween(cpuBefore, cpuAfter) };
  if (cacheBefore && cacheAfter) {
    const hits = cacheAfter.hits - cacheBefore.hits;
    const lookups = hits + cacheAfter.misses - cacheBefore.misses;
    measurement.cacheHitRatio = lookups > 0 ? hits / lookups : undefined;
  }
  print(
    `  ${system.padEnd(7)} ${operation.padEnd(52)} ${formatRate(result.requests / result.seconds).padStart(9)} requests/s ` +
      `${formatRate(result.items / result.seconds).padStart(9)} ${itemName}/s`,
  );
  return measurement;
}

function percentile(sortedMs: Float64Array, fraction: number): number {
  if (sortedMs.length === 0) {
    return Number.NaN;
  }
  return sortedMs[Math.min(sortedMs.length - 1, Math.floor(fraction * sortedMs.length))]!;
}

// ---- Keys -----------------------------------------------------------------------------------------

/** Reads one key per line, skipping blank lines and `#` comments. Latin-1 decoding keeps stray bytes harmless. */
function readKeyLines(relativePath: string): string[] {
  const path = join(SHARED_DATA, relativePath);
  if (!existsSync(path)) {
    throw new Error(`key file ${path} not found. The benchmark reads real keys from SHARED_DATA (${SHARED_DATA}), the data folder beside the checkout.`);
  }
  return readFileSync(path, 'latin1')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line.length > 0 && !line.startsWith('#'));
}

/**
 * Loads IPv4 addresses and domains, keeps those the repository accepts, removes duplicates after
 * normalisation and shuffles them with a fixed seed.
 */
function loadKeys(): { keys: BenchKey[]; skipped: number } {
  const candidates: { kind: ObjectKindName; raw: string }[] = [];
  for (const source of IPV4_SOURCES) {
    // CIDR lines and 0.0.0.0 are list artefacts, not sender addresses.
    for (const line of readKeyLines(source)) {
      if (/^[0-9]{1,3}(\.[0-9]{1,3}){3}$/.test(line) && line !== '0.0.0.0') {
        candidates.push({ kind: 'ip', raw: line });
      }
    }
  }
  for (const source of DOMAIN_SOURCES) {
    for (const line of readKeyLines(source)) {
      candidates.push({ kind: 'domain', raw: line });
    }
  }

  const seen = new Set<string>();
  const keys: BenchKey[] = [];
  let skipped = 0;
  for (const { kind, raw } of candidates) {
    let key: string;
    try {
      key = normaliseKey(kind, raw).key;
    } catch {
      skipped += 1;
      continue;
    }
    if (seen.has(`${kind}:${key}`)) {
      continue;
    }
    seen.add(`${kind}:${key}`);
    keys.push({ kind, key, wire: { kind: kindToWire(kind), key } });
  }

  shuffle(keys, SHUFFLE_SEED);
  return { keys, skipped };
}

/** Fisher-Yates shuffle driven by mulberry32, a small seeded 32-bit generator. */
function shuffle<T>(items: T[], seed: number): void {
  let state = seed >>> 0;
  const next = (): number => {
    state = (state + 0x6d2b79f5) >>> 0;
    let mixed = Math.imul(state ^ (state >>> 15), state | 1);
    mixed ^= mixed + Math.imul(mixed ^ (mixed >>> 7), mixed | 61);
    return ((mixed ^ (mixed >>> 14)) >>> 0) / 4_294_967_296;
  };
  for (let index = items.length - 1; index > 0; index -= 1) {
    const other = Math.floor(next() * (index + 1));
    [items[index], items[other]] = [items[other]!, items[index]!];
  }
}

/** Returns `count` items of `pool` starting at `start`, wrapping around at the end. */
function takeCyclic<T>(pool: readonly T[], start: number, count: number): T[] {
  const selection = new Array<T>(count);
  for (let offset = 0; offset < count; offset += 1) {
    selection[offset] = pool[(start + offset) % pool.length]!;
  }
  return selection;
}

// ---- IMP-CDR --------------------------------------------------------------------------------------

interface ObserveConnection {
  client: ImpProtocolClient;
  impId: string;
  /** Sequence of the last batch sent. The next batch uses the next integer. */
  sequence: number;
}

/** A running repository with its connections and the keys of each scenario. */
interface ImpTarget {
  node: TestNode;
  connections: ObserveConnection[];
  /** The lookups share the first Observe connection, because lookups and Observe never run at the same time. */
  lookupClient: ImpProtocolClient;
  warmKeys: impcdr.v1.IObjectKey[];
  coldKeys: Record<(typeof LOOKUP_BATCH_SIZES)[number], impcdr.v1.IObjectKey[]>;
  /** One observation per key of the pool. */
  observations: impcdr.v1.IObservation[];
  /** Position in `observations` of the next Observe batch. */
  observeCursor: number;
  /** Encoded Reputation of each warm key, by Redis key name, stored in Redis as that key's value. */
  warmValues: Map<string, Buffer>;
  notes: string[];
}

/** Looks up `keys` in one request and returns the reputations in key order. Throws if any key failed. */
async function lookupKeys(client: ImpProtocolClient, keys: impcdr.v1.IObjectKey[]): Promise<impcdr.v1.IReputation[]> {
  const response = await client.request({ lookup: { keys } });
  const results = response.lookupResponse?.results;
  if (!results) {
    throw new Error(`Lookup of ${keys.length} keys failed: ${response.error?.message ?? 'the response has no LookupResponse'}`);
  }
  if (results.length !== keys.length) {
    throw new Error(`Lookup of ${keys.length} keys returned ${results.length} results`);
  }
  return results.map((result, index) => {
    if (!result.reputation) {
      throw new Error(`Lookup of ${keys[index]!.key} failed: ${result.error?.message ?? 'the result has neither a reputation nor an error'}`);
    }
    return result.reputation;
  });
}

/** Sends one Observe batch on `connection` and checks that every observation was counted. */
async function observeBatch(connection: ObserveConnection, observations: impcdr.v1.IObservation[]): Promise<number> {
  connection.sequence += 1;
  const response = await connection.client.request({ observe: { sequence: connection.sequence, observations } });
  const ack = response.observeAck;
  if (!ack) {
    throw new Error(`Observe batch ${connection.sequence} of ${connection.impId} failed: ${response.error?.message ?? 'the response has no ObserveAck'}`);
  }
  if (ack.duplicate || ack.applied !== observations.length || (ack.rejected ?? []).length > 0) {
    throw new Error(
      `Observe batch ${connection.sequence} of ${connection.impId}: ${ack.applied} of ${observations.length} applied, ` +
        `duplicate ${ack.duplicate}, first rejection: ${ack.rejected?.[0]?.message ?? 'none'}`,
    );
  }
  return observations.length;
}

/** Reads the repository's cache hit and miss counts through `cdrctl status --json`. */
async function readCacheCounts(node: TestNode): Promise<CacheCounts> {
  const result = await cdrctl(node, ['status', '--json']);
  if (result.code !== 0) {
    throw new Error(`cdrctl status failed with exit code ${result.code}: ${result.stderr}`);
  }
  const status = JSON.parse(result.stdout) as { traffic?: { cacheHits?: number; cacheMisses?: number } };
  return { hits: Number(status.traffic?.cacheHits ?? 0), misses: Number(status.traffic?.cacheMisses ?? 0) };
}

/**
 * Starts a repository, enrolls and connects OBSERVE_CONNECTIONS IMPs, gives every key one observation so
 * that lookups read stored objects, and loads the warm keys into the reputation cache.
 */
async function setUpImp(keys: BenchKey[]): Promise<ImpTarget> {
  const node = await startNode();
  repositoryLog = node.output;
  measuredPids.push(node.process.pid!);
  cleanups.push(async () => {
    await node.stop();
    removeNode(node);
  });
  print(`IMP-CDR repository started on 127.0.0.1:${node.port}, state in ${node.dir}`);

  const connections: ObserveConnection[] = [];
  cleanups.push(async () => {
    await Promise.all(connections.map((connection) => connection.client.close()));
  });
  for (let index = 1; index <= OBSERVE_CONNECTIONS; index += 1) {
    const impId = `bench-imp-${index}`;
    const bundle = await enroll(node, impId);
    const client = await connectReady(node, bundle, impId);
    connections.push({ client, impId, sequence: 0 });
  }

  const coldStart = WARM_KEY_COUNT;
  const cold100End = coldStart + Math.floor(((keys.length - coldStart) * COLD_100_SHARE) / 100) * 100;
  const cold1000End = cold100End + Math.floor((keys.length - cold100End) / 1000) * 1000;
  const target: ImpTarget = {
    node,
    connections,
    lookupClient: connections[0]!.client,
    warmKeys: keys.slice(0, WARM_KEY_COUNT).map((key) => key.wire),
    coldKeys: {
      100: keys.slice(coldStart, cold100End).map((key) => key.wire),
      1000: keys.slice(cold100End, cold1000End).map((key) => key.wire),
    },
    observations: keys.map((key) => ({ object: key.wire, intervalStartMs: Date.now(), counters: { messages: 1 } })),
    observeCursor: 0,
    warmValues: new Map(),
    notes: [],
  };

  const seed = await withTimeout(
    runClosedLoop({
      workers: OBSERVE_CONNECTIONS,
      maxRequests: Math.ceil(target.observations.length / SEED_BATCH_SIZE),
      durationMs: 120_000,
      send: (index, worker) =>
        observeBatch(connections[worker]!, target.observations.slice(index * SEED_BATCH_SIZE, (index + 1) * SEED_BATCH_SIZE)),
    }),
    150_000,
    'filling the index',
  );
  if (seed.items !== target.observations.length) {
    throw new Error(`filling the index failed: ${seed.items} of ${target.observations.length} observations were acknowledged`);
  }
  target.notes.push(`index filled with ${seed.items} observations in ${seed.seconds.toFixed(1)} s before the lookups`);
  print(`  ${target.notes.at(-1)}`);

  const reputations = await lookupKeys(target.lookupClient, target.warmKeys);
  reputations.forEach((reputation, index) => {
    target.warmValues.set(redisLookupKey(keys[index]!), Buffer.from(proto.Reputation.encode(reputation).finish()));
  });
  return target;
}

async function measureImpLookupSingle(target: ImpTarget, inFlight: number): Promise<Measurement> {
  // Cached entries expire after the repository's cache.maxAgeMs, so each warm scenario loads them again.
  await lookupKeys(target.lookupClient, target.warmKeys);
  return measure('IMP-CDR', `lookup-1-inflight-${inFlight}`, `Lookup 1 key, ${inFlight} in flight, warm`, 'keys', {
    workers: inFlight,
    maxRequests: MAX_REQUESTS,
    readCacheCounts: () => readCacheCounts(target.node),
    send: (index) => lookupKeys(target.lookupClient, [target.warmKeys[index % target.warmKeys.length]!]).then(() => 1),
  });
}

async function measureImpLookupWarm(target: ImpTarget, batchSize: number): Promise<Measurement> {
  await lookupKeys(target.lookupClient, target.warmKeys);
  return measure('IMP-CDR', `lookup-${batchSize}-warm`, `Lookup ${batchSize} keys, warm`, 'keys', {
    workers: 1,
    maxRequests: MAX_REQUESTS,
    readCacheCounts: () => readCacheCounts(target.node),
    send: (index) => lookupKeys(target.lookupClient, takeCyclic(target.warmKeys, index * batchSize, batchSize)).then(() => batchSize),
  });
}

/** Looks up each cold key once, so the scenario ends early when they run out. */
async function measureImpLookupCold(target: ImpTarget, batchSize: (typeof LOOKUP_BATCH_SIZES)[number]): Promise<Measurement> {
  const coldKeys = target.coldKeys[batchSize];
  const measurement = await measure('IMP-CDR', `lookup-${batchSize}-cold`, `Lookup ${batchSize} keys, cold`, 'keys', {
    workers: 1,
    maxRequests: Math.floor(coldKeys.length / batchSize),
    warmup: false,
    readCacheCounts: () => readCacheCounts(target.node),
    send: (index) => lookupKeys(target.lookupClient, coldKeys.slice(index * batchSize, (index + 1) * batchSize)).then(() => batchSize),
  });
  if (measurement.seconds * 1000 < SCENARIO_MS * 0.9) {
    target.notes.push(`Lookup ${batchSize} keys, cold: ran out of unseen keys after ${measurement.items} keys, ${measurement.seconds.toFixed(2)} s`);
  }
  return measurement;
}

function measureImpObserve(target: ImpTarget, batchSize: number): Promise<Measurement> {
  return measure('IMP-CDR', `observe-${batchSize}`, `Observe ${batchSize}/batch, ${OBSERVE_CONNECTIONS} connections, durable`, 'observations', {
    workers: OBSERVE_CONNECTIONS,
    maxRequests: MAX_REQUESTS,
    send: (_, worker) => {
      const batch = takeCyclic(target.observations, target.observeCursor, batchSize);
      target.observeCursor = (target.observeCursor + batchSize) % target.observations.length;
      return observeBatch(target.connections[worker]!, batch);
    },
  });
}

// ---- Redis ----------------------------------------------------------------------------------------

interface RedisServer {
  port: number;
  version: string;
  process: ChildProcess;
  dir: string;
}

/** A running redis-server with its connections and key names. */
interface RedisTarget {
  server: RedisServer;
  lookupConnection: Redis;
  /** One connection per concurrent writer, like the Observe connections. */
  writers: Redis[];
  warmNames: string[];
  /** Hash of each key's counters for the current hour, the repository's default bucket width. */
  counterKeys: string[];
  /** Position in `counterKeys` of the next pipeline. */
  counterCursor: number;
}

function redisLookupKey(key: BenchKey): string {
  return `rep:${key.kind}:${key.key}`;
}

/** Returns the `redis-server --version` line, or undefined when redis-server is not on the PATH. */
function findRedisServer(): string | undefined {
  try {
    return execFileSync('redis-server', ['--version'], { encoding: 'utf8' }).trim();
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return undefined;
    }
    throw error;
  }
}

/** Returns a TCP port on 127.0.0.1 that was free a moment ago. */
function findFreePort(): Promise<number> {
  return new Promise((resolvePort, rejectPort) => {
    const server = createServer();
    server.once('error', rejectPort);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      server.close(() => {
        if (typeof address === 'object' && address) {
          resolvePort(address.port);
        } else {
          rejectPort(new Error('finding a free port failed: the listener on 127.0.0.1 has no port'));
        }
      });
    });
  });
}

/** Starts redis-server with an append-only file under a temporary folder, fsync on every write. */
async function startRedis(): Promise<RedisServer> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-bench-redis-'));
  const port = await findFreePort();
  const child = spawn(
    'redis-server',
    ['--bind', '127.0.0.1', '--port', String(port), '--dir', dir, '--save', '', '--appendonly', 'yes', '--appendfsync', 'always', '--daemonize', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  );
  const exited = new Promise<number | null>((resolveExit) => child.once('exit', (code) => resolveExit(code)));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
    }
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  const output: string[] = [];
  await withTimeout(
    new Promise<void>((resolveReady, rejectReady) => {
      const onData = (chunk: Buffer): void => {
        output.push(chunk.toString('utf8'));
        if (output.join('').includes('Ready to accept connections')) {
          resolveReady();
        }
      };
      child.stdout!.on('data', onData);
      child.stderr!.on('data', onData);
      void exited.then((code) => rejectReady(new Error(`redis-server exited with ${code} before it was ready:\n${output.join('')}`)));
    }),
    10_000,
    'starting redis-server',
  );
  measuredPids.push(child.pid!);

  const probe = await connectRedis(port);
  const info = await probe.info('server');
  await probe.quit();
  const version = /redis_version:(\S+)/.exec(info)?.[1] ?? 'unknown';
  return { port, version, process: child, dir };
}

/** Opens a connection that fails requests at once when the server is gone, instead of retrying. */
async function connectRedis(port: number): Promise<Redis> {
  const redis = new Redis({
    host: '127.0.0.1',
    port,
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  await redis.connect();
  return redis;
}

/** Starts redis-server, opens the connections and stores the warm keys' values. */
async function setUpRedis(keys: BenchKey[], warmValues: Map<string, Buffer>): Promise<RedisTarget> {
  const server = await startRedis();
  print(`Redis ${server.version} started on 127.0.0.1:${server.port}, append-only file in ${server.dir}`);

  const lookupConnection = await connectRedis(server.port);
  const writers = await Promise.all(Array.from({ length: OBSERVE_CONNECTIONS }, () => connectRedis(server.port)));
  cleanups.push(async () => {
    await Promise.all([lookupConnection, ...writers].map((connection) => connection.quit().catch(() => undefined)));
  });

  const warmNames = [...warmValues.keys()];
  for (let start = 0; start < warmNames.length; start += 100) {
    const chunk = warmNames.slice(start, start + 100);
    await lookupConnection.mset(...chunk.flatMap((name) => [name, warmValues.get(name)!]));
  }

  const bucketStart = Math.floor(Date.now() / 3_600_000) * 3600;
  const counterKeys = keys.map((key) => `obs:${key.kind}:${key.key}:${bucketStart}`);
  return { server, lookupConnection, writers, warmNames, counterKeys, counterCursor: 0 };
}

function measureRedisGet(target: RedisTarget, inFlight: number): Promise<Measurement> {
  return measure('Redis', `get-inflight-${inFlight}`, `GET 1 key, ${inFlight} in flight`, 'keys', {
    workers: inFlight,
    maxRequests: MAX_REQUESTS,
    send: async (index) => {
      const name = target.warmNames[index % target.warmNames.length]!;
      if ((await target.lookupConnection.getBuffer(name)) === null) {
        throw new Error(`Redis GET ${name} returned nil, but the benchmark stored that key before the scenario`);
      }
      return 1;
    },
  });
}

function measureRedisMget(target: RedisTarget, batchSize: number): Promise<Measurement> {
  return measure('Redis', `mget-${batchSize}`, `MGET ${batchSize} keys`, 'keys', {
    workers: 1,
    maxRequests: MAX_REQUESTS,
    send: async (index) => {
      const values = await target.lookupConnection.mgetBuffer(...takeCyclic(target.warmNames, index * batchSize, batchSize));
      if (values.length !== batchSize || values.some((value) => value === null)) {
        throw new Error(`Redis MGET of ${batchSize} stored keys returned ${values.length} values, some nil`);
      }
      return batchSize;
    },
  });
}

/** Sends pipelines of one HINCRBY per observation from every writer connection. */
async function measureRedisHincrby(target: RedisTarget, batchSize: number, appendfsync: AppendFsync): Promise<Measurement> {
  await target.lookupConnection.config('SET', 'appendfsync', appendfsync);
  return measure(
    'Redis',
    `hincrby-${batchSize}-${appendfsync}`,
    `HINCRBY ${batchSize}/pipeline, ${OBSERVE_CONNECTIONS} connections, appendfsync ${appendfsync}`,
    'observations',
    {
      workers: OBSERVE_CONNECTIONS,
      maxRequests: MAX_REQUESTS,
      send: async (_, worker) => {
        const pipeline = target.writers[worker]!.pipeline();
        for (const name of takeCyclic(target.counterKeys, target.counterCursor, batchSize)) {
          pipeline.hincrby(name, 'messages', 1);
        }
        target.counterCursor = (target.counterCursor + batchSize) % target.counterKeys.length;
        const replies = await pipeline.exec();
        const failed = (replies ?? []).find(([error]) => error);
        if (!replies || replies.length !== batchSize || failed) {
          throw new Error(`Redis HINCRBY pipeline of ${batchSize} failed: ${failed?.[0]?.message ?? `${replies?.length ?? 0} replies`}`);
        }
        return batchSize;
      },
    },
  );
}

// ---- Scenarios ------------------------------------------------------------------------------------

/** Runs every scenario, each IMP-CDR one followed by its Redis counterpart when Redis runs. */
async function runScenarios(imp: ImpTarget, redis: RedisTarget | undefined): Promise<Measurement[]> {
  const measurements: Measurement[] = [];

  for (const inFlight of [1, PIPELINED_IN_FLIGHT]) {
    measurements.push(await measureImpLookupSingle(imp, inFlight));
    if (redis) {
      measurements.push(await measureRedisGet(redis, inFlight));
    }
  }
  for (const batchSize of LOOKUP_BATCH_SIZES) {
    measurements.push(await measureImpLookupWarm(imp, batchSize));
    if (redis) {
      measurements.push(await measureRedisMget(redis, batchSize));
    }
  }
  for (const batchSize of LOOKUP_BATCH_SIZES) {
    measurements.push(await measureImpLookupCold(imp, batchSize));
  }

  // Observe runs after every lookup, because each commit drops the objects it touched from the cache.
  for (const batchSize of OBSERVE_BATCH_SIZES) {
    measurements.push(await measureImpObserve(imp, batchSize));
    if (redis) {
      measurements.push(await measureRedisHincrby(redis, batchSize, 'always'));
    }
  }
  if (redis) {
    for (const appendfsync of ['everysec', 'no'] as const) {
      for (const batchSize of OBSERVE_BATCH_SIZES) {
        measurements.push(await measureRedisHincrby(redis, batchSize, appendfsync));
      }
    }
  }
  return measurements;
}

// ---- Report ---------------------------------------------------------------------------------------

function formatRate(value: number): string {
  if (!Number.isFinite(value)) {
    return 'n/a';
  }
  return Math.round(value).toLocaleString('en-US');
}

function formatMs(value: number): string {
  if (!Number.isFinite(value)) {
    return 'n/a';
  }
  const digits = value < 1 ? 3 : 2;
  return value.toFixed(digits);
}

/** Formats the 1-minute load average, which shows other work on the machine during the run. */
function formatLoad(): string {
  return loadavg()[0]!.toFixed(2);
}

function describeMachine(redisVersion: string, loadAtStart: string): string[] {
  const cpuModel = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'))?.[1] ?? 'unknown';
  let fileSystem = 'unknown';
  try {
    fileSystem = execFileSync('df', ['--output=fstype', tmpdir()], { encoding: 'utf8' }).trim().split('\n').at(-1) ?? 'unknown';
  } catch {
    // The file system is only context for the fsync figures, so a missing df is not an error.
  }
  return [
    `date: ${new Date().toISOString()}`,
    `nproc: ${availableParallelism()}`,
    `CPU: ${cpuModel}`,
    `memory: ${(totalmem() / 2 ** 30).toFixed(1)} GiB`,
    `kernel: Linux ${release()}`,
    `node: ${process.version}`,
    `redis-server: ${redisVersion}`,
    `state folders: ${tmpdir()} (${fileSystem})`,
    `1-minute load average: ${loadAtStart} at the start, ${formatLoad()} at the end`,
  ];
}

function printTable(measurements: Measurement[]): void {
  print('| System | Operation | Requests | Seconds | Requests/s | Keys or observations/s | p50 ms | p99 ms | Cache hits | Other CPU, cores |');
  print('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
  for (const measurement of measurements) {
    const sorted = Float64Array.from(measurement.latenciesMs).sort();
    const hits = measurement.cacheHitRatio === undefined ? '' : `${(measurement.cacheHitRatio * 100).toFixed(0)} %`;
    print(
      `| ${measurement.system} | ${measurement.operation} | ${measurement.requests} | ${measurement.seconds.toFixed(2)} | ` +
        `${formatRate(measurement.requests / measurement.seconds)} | ${formatRate(measurement.items / measurement.seconds)} ${measurement.itemName} | ` +
        `${formatMs(percentile(sorted, 0.5))} | ${formatMs(percentile(sorted, 0.99))} | ${hits} | ${measurement.otherCores.toFixed(2)} |`,
    );
  }
}

const COMPARISONS: Comparison[] = [
  { label: 'Lookup 1 key / GET, 1 in flight', impId: 'lookup-1-inflight-1', redisId: 'get-inflight-1' },
  { label: `Lookup 1 key / GET, ${PIPELINED_IN_FLIGHT} in flight`, impId: `lookup-1-inflight-${PIPELINED_IN_FLIGHT}`, redisId: `get-inflight-${PIPELINED_IN_FLIGHT}` },
  ...LOOKUP_BATCH_SIZES.flatMap((batchSize) => [
    { label: `Lookup ${batchSize} keys warm / MGET ${batchSize}`, impId: `lookup-${batchSize}-warm`, redisId: `mget-${batchSize}` },
    { label: `Lookup ${batchSize} keys cold / MGET ${batchSize}`, impId: `lookup-${batchSize}-cold`, redisId: `mget-${batchSize}` },
  ]),
  ...OBSERVE_BATCH_SIZES.map((batchSize) => ({
    label: `Observe ${batchSize}/batch / HINCRBY ${batchSize}/pipeline, appendfsync always`,
    impId: `observe-${batchSize}`,
    redisId: `hincrby-${batchSize}-always`,
  })),
];

function printComparisons(measurements: Measurement[]): void {
  const byId = new Map(measurements.map((measurement) => [measurement.id, measurement]));
  print('| Pair | IMP-CDR per s | Redis per s | IMP-CDR / Redis |');
  print('|---|---:|---:|---:|');
  for (const comparison of COMPARISONS) {
    const imp = byId.get(comparison.impId);
    const redis = byId.get(comparison.redisId);
    const impRate = imp ? imp.items / imp.seconds : Number.NaN;
    const redisRate = redis ? redis.items / redis.seconds : Number.NaN;
    const ratio = imp && redis ? (impRate / redisRate).toFixed(2) : 'n/a (Redis not measured)';
    print(`| ${comparison.label} | ${formatRate(impRate)} | ${formatRate(redisRate)} | ${ratio} |`);
  }
}

// ---- Main -----------------------------------------------------------------------------------------

async function runCleanups(): Promise<void> {
  while (cleanups.length > 0) {
    const cleanup = cleanups.pop()!;
    try {
      await withTimeout(cleanup(), 15_000, 'cleanup');
    } catch (error) {
      process.stderr.write(`bench: cleanup failed: ${(error as Error).message}\n`);
    }
  }
}

async function main(): Promise<void> {
  const runTimer = setTimeout(() => {
    process.stderr.write(`bench: aborted after ${RUN_TIMEOUT_MS / 1000} s, the run time limit\n`);
    void runCleanups().finally(() => process.exit(1));
  }, RUN_TIMEOUT_MS);
  runTimer.unref();
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      process.stderr.write(`bench: ${signal} received, stopping the servers\n`);
      void runCleanups().finally(() => process.exit(1));
    });
  }

  const loadAtStart = formatLoad();
  const redisVersionLine = findRedisServer();
  const { keys, skipped } = loadKeys();
  const ipCount = keys.filter((key) => key.kind === 'ip').length;
  print(`IMP-CDR benchmark: ${keys.length} keys (${ipCount} IPv4 addresses, ${keys.length - ipCount} domains, ${skipped} lines rejected by the key check)`);

  const imp = await setUpImp(keys);
  const notes = imp.notes;
  let redis: RedisTarget | undefined;
  if (redisVersionLine === undefined) {
    const message =
      'redis-server not found on the PATH, so the Redis rows are missing. Install the Debian package ' +
      'redis-server (apt-get install redis-server) and run make bench again to measure them.';
    process.stderr.write(`bench: ${message}\n`);
    notes.push(message);
  } else {
    redis = await setUpRedis(keys, imp.warmValues);
    const valueBytes = [...imp.warmValues.values()].reduce((sum, value) => sum + value.length, 0);
    notes.push(`Redis values are the encoded Reputation messages of the warm keys, ${(valueBytes / imp.warmValues.size).toFixed(0)} bytes on average`);
  }

  const measurements = await runScenarios(imp, redis);
  await runCleanups();

  print();
  print('## Machine');
  print();
  for (const line of describeMachine(redis?.server.version ?? 'not installed', loadAtStart)) {
    print(`- ${line}`);
  }
  print();
  print('## Results');
  print();
  printTable(measurements);
  print();
  print('## IMP-CDR / Redis');
  print();
  printComparisons(measurements);
  print();
  for (const note of notes) {
    print(`- ${note}`);
  }
}

try {
  await main();
} catch (error) {
  process.stderr.write(`bench: failed: ${(error as Error).stack ?? String(error)}\n`);
  if (repositoryLog.length > 0) {
    process.stderr.write(`bench: last lines of the repository log:\n${repositoryLog.slice(-20).join('\n')}\n`);
  }
  process.exitCode = 1;
} finally {
  await runCleanups();
}
