#!/usr/bin/env node
/**
 * imp-cdr-replay: plays real mail (.eml files and folders, mbox, Postfix logs, JSON Lines) as N IMPs
 * against repository nodes and prints a summary. Exit code 0 when every batch was acknowledged, 1 when
 * batches are left in the spool or the run failed, 2 for an invalid command line.
 */

import { parseArgs } from 'node:util';

import { CdrError } from '../../../services/common/errors.js';
import { createLogger } from '../../../services/common/logger.js';
import type { MessageLabel } from '../session.js';
import { runReplay, type ReplaySummary } from '../replay/runner.js';
import { INPUT_FORMATS, type InputFormat } from '../replay/sources.js';

const USAGE = `Usage: imp-cdr-replay [options] [FILE|FOLDER ...]

Reads .eml files and folders, mbox files, Postfix logs (*.log) and JSON Lines (*.jsonl), and reports
each message as an SMTP session of one of N IMPs. Without inputs it only sends what the spools hold.

Options:
  --node HOST:PORT     repository node, repeatable, tried in order (default 127.0.0.1:7300)
  --bundles DIR        folder with one client bundle per IMP, as written by
                       cdrctl client enroll NAME --out DIR/NAME (default var/replay/bundles)
  --imps N             number of IMPs to play (default 1)
  --rate N             messages per second over all IMPs, 0 for no limit (default 0)
  --label LABEL        verdict of every message: ham, spam, virus, phish or bulk
                       (default: from folder names such as phishing_pot, spam, ham)
  --format FORMAT      reader for every input: eml, mbox, postfix or jsonl (default: by file)
  --state DIR          folder of the IMPs' spools (default var/replay/state)
  --interval-ms N      aggregation interval in milliseconds (default 60000)
  --drain-timeout-ms N time to wait for the last acknowledgements (default 30000)
  --no-lookup          do not look up each message's client IP
  --json               print the summary as JSON
  --log-level LEVEL    pino level of the log on stderr (default warn)
  --help               print this text
`;

function parseInteger(name: string, text: string | undefined, fallback: number, minimum: number): number {
  if (text === undefined) {
    return fallback;
  }
  const value = Number(text);
  if (!/^[0-9]+$/.test(text) || !Number.isSafeInteger(value) || value < minimum) {
    throw new CdrError('ERR_CLI_USAGE', `--${name} must be an integer of at least ${minimum}, got ${JSON.stringify(text)}`);
  }
  return value;
}

function printSummary(summary: ReplaySummary): void {
  const lines = [
    `IMPs:                   ${summary.imps}`,
    `items read:             ${summary.itemsRead}`,
    `sessions reported:      ${summary.sessionsReported}`,
    `observations reported:  ${summary.observationsReported} (raw JSON Lines observations)`,
    `skipped:                ${summary.skipped.length}`,
    ...Object.entries(summary.skippedByReason).map(([reason, count]) => `  ${count} x ${reason}`),
    ...summary.skipped.slice(0, 20).map((entry) => `  ${entry.name}: ${entry.reason}`),
    ...(summary.skipped.length > 20 ? [`  ... and ${summary.skipped.length - 20} more (--json lists all)`] : []),
    `observations sent:      ${summary.observationsSent} in ${summary.batchesSpooled} batches`,
    `batches acknowledged:   ${summary.batchesAcknowledged} (${summary.batchesDuplicate} as duplicates)`,
    `observations applied:   ${summary.observationsApplied} (${summary.observationsRejected} rejected)`,
    `batches dropped:        ${summary.batchesDropped}`,
    `batches left in spool:  ${summary.batchesLeftInSpool}`,
    `lookups:                ${summary.lookups} (${summary.lookupsFailed} failed, ${summary.cacheHits} cache hits, ${summary.roundTrips} round trips)`,
    `bytes on the wire:      ${summary.bytesSent} sent, ${summary.bytesReceived} received (frames, before TLS)`,
    `duration:               ${summary.durationMs} ms`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
}

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: {
      node: { type: 'string', multiple: true },
      bundles: { type: 'string' },
      imps: { type: 'string' },
      rate: { type: 'string' },
      label: { type: 'string' },
      format: { type: 'string' },
      state: { type: 'string' },
      'interval-ms': { type: 'string' },
      'drain-timeout-ms': { type: 'string' },
      'no-lookup': { type: 'boolean' },
      json: { type: 'boolean' },
      'log-level': { type: 'string' },
      help: { type: 'boolean' },
    },
  });
  if (values.help) {
    process.stdout.write(USAGE);
    return 0;
  }
  if (values.format !== undefined && !INPUT_FORMATS.includes(values.format as InputFormat)) {
    throw new CdrError('ERR_CLI_USAGE', `--format must be one of ${INPUT_FORMATS.join(', ')}, got ${JSON.stringify(values.format)}`);
  }
  const rate = values.rate === undefined ? 0 : Number(values.rate);
  if (!Number.isFinite(rate) || rate < 0) {
    throw new CdrError('ERR_CLI_USAGE', `--rate must be 0 or a positive number of messages per second, got ${JSON.stringify(values.rate)}`);
  }
  const logLevel = (values['log-level'] ?? 'warn') as 'warn';

  const progress = process.stderr.isTTY
    ? (summary: ReplaySummary) => {
        if (summary.itemsRead % 25 === 0) {
          process.stderr.write(`\r${summary.itemsRead} read, ${summary.sessionsReported} reported, ${summary.skipped.length} skipped, ${summary.lookups} lookups`);
        }
      }
    : undefined;

  const summary = await runReplay({
    inputs: positionals,
    ...(values.format ? { format: values.format as InputFormat } : {}),
    ...(values.label ? { label: values.label as MessageLabel } : {}),
    nodes: values.node ?? ['127.0.0.1:7300'],
    bundlesDir: values.bundles ?? 'var/replay/bundles',
    imps: parseInteger('imps', values.imps, 1, 1),
    rate,
    stateDir: values.state ?? 'var/replay/state',
    lookups: !values['no-lookup'],
    intervalMs: parseInteger('interval-ms', values['interval-ms'], 60_000, 1),
    drainTimeoutMs: parseInteger('drain-timeout-ms', values['drain-timeout-ms'], 30_000, 0),
    ...(progress ? { onProgress: progress } : {}),
    logger: createLogger('imp-cdr-replay', logLevel, 2),
  });
  if (progress) {
    process.stderr.write('\n');
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(summary, null, 2)}\n`);
  } else {
    printSummary(summary);
  }
  return summary.batchesLeftInSpool === 0 && summary.batchesDropped === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const code = error instanceof CdrError ? error.code : (error as { code?: string }).code;
    process.stderr.write(`imp-cdr-replay: ${code ? `${code}: ` : ''}${(error as Error).message}\n`);
    const usage = code === 'ERR_CLI_USAGE' || String(code).startsWith('ERR_PARSE_ARGS');
    if (usage) {
      process.stderr.write('Run imp-cdr-replay --help for the options.\n');
    }
    process.exit(usage ? 2 : 1);
  },
);
