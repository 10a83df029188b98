/**
 * Plays replay input as N IMPs against repository nodes: each message becomes one reported session of
 * the IMP whose turn it is (round robin), followed by a lookup of its client IP through the IMP's cache.
 */

import { readFileSync, readdirSync } from 'node:fs';
import { join, sep } from 'node:path';

import { CdrError } from '../../../services/common/errors.js';
import type { Logger } from '../../../services/common/logger.js';
import { ImpClient, type AcknowledgedBatch } from '../imp-client.js';
import { MESSAGE_LABELS, type MessageLabel, type SessionReport } from '../session.js';
import { readMessageFacts } from './message.js';
import { readInputs, type InputFormat } from './sources.js';

export interface ReplayOptions {
  /** Files and folders to read. */
  inputs: string[];
  /** Reader for every input; detected per file when absent. */
  format?: InputFormat;
  /** Verdict counted for every message; taken from the folder names (phish, spam, ham, nice, virus, bulk) when absent. */
  label?: MessageLabel;
  /** Repository nodes, "HOST:PORT". */
  nodes: string[];
  /** Folder with one client bundle per IMP (`cdrctl client enroll NAME --out DIR/NAME`); the folder name is the IMP id. */
  bundlesDir: string;
  /** Number of IMPs to play; the first N bundle folders in name order are used. */
  imps: number;
  /** Messages per second over all IMPs; 0 for no limit. */
  rate: number;
  /** Folder of each IMP's spool, as STATE/IMP_ID. */
  stateDir: string;
  /** Look up the client IP of every message. @defaultValue true */
  lookups?: boolean;
  /** Aggregation interval, in milliseconds. @defaultValue 60000 */
  intervalMs?: number;
  /** Time to wait at the end for every batch to be acknowledged, in milliseconds. @defaultValue 30000 */
  drainTimeoutMs?: number;
  /** Maximum unacknowledged batches per IMP connection. @defaultValue 8 */
  maxInFlightBatches?: number;
  /** Called after each item, for a progress display. */
  onProgress?: (summary: ReplaySummary) => void;
  /** Called on every acknowledged batch, with the IMP id. */
  onAcknowledged?: (impId: string, batch: AcknowledgedBatch) => void;
  logger?: Logger;
}

export interface ReplaySummary {
  imps: number;
  /** Messages, log sessions and JSON lines read. */
  itemsRead: number;
  sessionsReported: number;
  observationsReported: number;
  skipped: { name: string; reason: string }[];
  /** Skipped items counted per reason, with the file name part removed. */
  skippedByReason: Record<string, number>;
  batchesSpooled: number;
  batchesAcknowledged: number;
  batchesDuplicate: number;
  batchesDropped: number;
  batchesLeftInSpool: number;
  observationsSent: number;
  observationsApplied: number;
  observationsRejected: number;
  lookups: number;
  lookupsFailed: number;
  cacheHits: number;
  cacheMisses: number;
  roundTrips: number;
  bytesSent: number;
  bytesReceived: number;
  durationMs: number;
}

/** Reads the client bundles of the first `count` IMPs. */
function readBundles(bundlesDir: string, count: number): { impId: string; ca: string; cert: string; key: string }[] {
  let names: string[];
  try {
    names = readdirSync(bundlesDir, { withFileTypes: true })
      .filter((entry) => entry.isDirectory())
      .map((entry) => entry.name)
      .sort();
  } catch (error) {
    throw new CdrError(
      'ERR_REPLAY_INPUT',
      `cannot read the bundle folder ${bundlesDir}: ${(error as Error).message}; enroll one folder per IMP with cdrctl client enroll NAME --out ${bundlesDir}/NAME`,
      { cause: error },
    );
  }
  if (names.length < count) {
    throw new CdrError(
      'ERR_REPLAY_INPUT',
      `${count} IMPs need ${count} client bundles in ${bundlesDir}, found ${names.length}; enroll more with cdrctl client enroll NAME --out ${bundlesDir}/NAME`,
      { details: { found: names.length, needed: count } },
    );
  }
  return names.slice(0, count).map((impId) => {
    const dir = join(bundlesDir, impId);
    try {
      return {
        impId,
        ca: readFileSync(join(dir, 'ca.pem'), 'utf8'),
        cert: readFileSync(join(dir, 'client.pem'), 'utf8'),
        key: readFileSync(join(dir, 'client.key'), 'utf8'),
      };
    } catch (error) {
      throw new CdrError('ERR_REPLAY_INPUT', `client bundle ${dir} is incomplete: ${(error as Error).message}`, { cause: error });
    }
  });
}

/** Returns the label that a folder name in `path` implies, or undefined. */
export function labelFromPath(path: string): MessageLabel | undefined {
  const folders = path.toLowerCase().split(sep).slice(0, -1);
  for (const folder of folders.reverse()) {
    if (folder.includes('phish')) return 'phish';
    if (folder.includes('virus')) return 'virus';
    if (folder.includes('spam')) return 'spam';
    if (folder.includes('bulk')) return 'bulk';
    if (folder === 'ham' || folder === 'nice' || folder.includes('ham')) return 'ham';
  }
  return undefined;
}

/**
 * Replays the inputs and returns the summary. Unusable items are counted with their reason and the run
 * continues.
 *
 * @throws CdrError `ERR_REPLAY_INPUT` for a missing input or bundle, `ERR_CLI_USAGE` for an invalid option.
 */
export async function runReplay(options: ReplayOptions): Promise<ReplaySummary> {
  if (!Number.isSafeInteger(options.imps) || options.imps < 1) {
    throw new CdrError('ERR_CLI_USAGE', `the number of IMPs must be an integer of at least 1, got ${options.imps}`);
  }
  if (!(options.rate >= 0)) {
    throw new CdrError('ERR_CLI_USAGE', `the rate must be 0 (no limit) or a positive number of messages per second, got ${options.rate}`);
  }
  if (options.label !== undefined && !MESSAGE_LABELS.includes(options.label)) {
    throw new CdrError('ERR_CLI_USAGE', `the label must be one of ${MESSAGE_LABELS.join(', ')}, got ${JSON.stringify(options.label)}`);
  }

  const started = Date.now();
  const clients = readBundles(options.bundlesDir, options.imps).map((bundle) => {
    const client = new ImpClient({
      nodes: options.nodes,
      tls: bundle,
      hello: { impId: bundle.impId, clusterId: 'replay', model: 'M300', oosVersion: '2.6' },
      stateDir: join(options.stateDir, bundle.impId),
      intervalMs: options.intervalMs ?? 60_000,
      ...(options.maxInFlightBatches ? { maxInFlightBatches: options.maxInFlightBatches } : {}),
      ...(options.logger ? { logger: options.logger } : {}),
    });
    client.on('acknowledged', (batch: AcknowledgedBatch) => options.onAcknowledged?.(bundle.impId, batch));
    return client;
  });
  clients.forEach((client) => client.start());
  // Waiting for the first connection keeps the first lookups from failing; reports are spooled either way.
  await Promise.all(clients.map((client) => client.waitConnected(5000)));

  const summary: ReplaySummary = {
    imps: clients.length,
    itemsRead: 0,
    sessionsReported: 0,
    observationsReported: 0,
    skipped: [],
    skippedByReason: {},
    batchesSpooled: 0,
    batchesAcknowledged: 0,
    batchesDuplicate: 0,
    batchesDropped: 0,
    batchesLeftInSpool: 0,
    observationsSent: 0,
    observationsApplied: 0,
    observationsRejected: 0,
    lookups: 0,
    lookupsFailed: 0,
    cacheHits: 0,
    cacheMisses: 0,
    roundTrips: 0,
    bytesSent: 0,
    bytesReceived: 0,
    durationMs: 0,
  };
  const skip = (name: string, reason: string) => {
    summary.skipped.push({ name, reason });
    const general = reason.replace(/[0-9]+/g, 'N');
    summary.skippedByReason[general] = (summary.skippedByReason[general] ?? 0) + 1;
  };

  let turn = 0;
  for (const item of readInputs(options.inputs, options.format)) {
    summary.itemsRead += 1;
    if (options.rate > 0) {
      const due = started + (summary.itemsRead * 1000) / options.rate;
      const wait = due - Date.now();
      if (wait > 0) {
        await new Promise((resolveWait) => setTimeout(resolveWait, wait));
      }
    }
    const client = clients[turn % clients.length]!;
    turn += 1;

    if (item.type === 'skip') {
      skip(item.name, item.reason);
      continue;
    }
    if (item.type === 'observation') {
      client.observe(item.kind, item.key, item.counters);
      summary.observationsReported += 1;
      continue;
    }

    let session: SessionReport;
    if (item.type === 'message') {
      try {
        const facts = await readMessageFacts(item.raw);
        const label = options.label ?? labelFromPath(item.name);
        session = {
          clientIp: facts.clientIp,
          ...(facts.envelopeSender ? { envelopeSender: facts.envelopeSender } : {}),
          ...(facts.fromDomain ? { fromDomain: facts.fromDomain } : {}),
          ...(label ? { label } : {}),
          ...(facts.spf ? { spf: facts.spf } : {}),
          ...(facts.dkim ? { dkim: facts.dkim } : {}),
          ...(facts.dmarc ? { dmarc: facts.dmarc } : {}),
        };
      } catch (error) {
        skip(item.name, (error as Error).message);
        continue;
      }
    } else {
      session = item.session;
    }

    try {
      client.report(session);
      summary.sessionsReported += 1;
    } catch (error) {
      skip(item.name, (error as Error).message);
      continue;
    }

    if (options.lookups ?? true) {
      summary.lookups += 1;
      try {
        await client.lookup([{ kind: 'ip', key: session.clientIp }]);
      } catch {
        summary.lookupsFailed += 1;
      }
    }
    options.onProgress?.(summary);
  }

  for (const client of clients) {
    client.flush();
  }
  const drainTimeoutMs = options.drainTimeoutMs ?? 30_000;
  await Promise.all(clients.map((client) => client.drain(drainTimeoutMs).catch(() => undefined)));
  await Promise.all(clients.map((client) => client.stop(0)));

  for (const client of clients) {
    const stats = client.stats();
    summary.batchesSpooled += stats.batchesSpooled;
    summary.batchesAcknowledged += stats.batchesAcknowledged;
    summary.batchesDuplicate += stats.batchesDuplicate;
    summary.batchesDropped += stats.batchesDropped;
    summary.batchesLeftInSpool += stats.spoolBatches;
    summary.observationsSent += stats.observationsSpooled;
    summary.observationsApplied += stats.observationsApplied;
    summary.observationsRejected += stats.observationsRejected;
    summary.cacheHits += stats.cache.hits;
    summary.cacheMisses += stats.cache.misses;
    summary.roundTrips += stats.cache.roundTrips;
    summary.bytesSent += stats.bytesSent;
    summary.bytesReceived += stats.bytesReceived;
  }
  summary.durationMs = Date.now() - started;
  return summary;
}
