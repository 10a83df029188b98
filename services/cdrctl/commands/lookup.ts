/**
 * `cdrctl lookup [--json] KIND KEY [KEY ...]`: reputation of keys.
 */

import { parseArgs } from 'node:util';

import { kindFromWire, kindToWire, OBJECT_KINDS, verdictFromWire, type ObjectKindName } from '../../../modules/protocol/constants.js';
import type { ControlClient } from '../../../modules/protocol/control-client.js';
import { COUNTER_FIELDS } from '../../../modules/protocol/counters.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { EXIT_FAILURE, EXIT_SUCCESS, usageError, withControl, type Command, type CommandContext } from '../command.js';

export const lookupCommand: Command = {
  name: 'lookup',
  usage: ['lookup [--json] KIND KEY [KEY ...]    reputation of keys; KIND is ip, network, domain or user'],
  async run(context, args) {
    const { values, positionals } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
    return withControl(context, (client) => lookup(context, client, positionals, values.json));
  },
};

async function lookup(context: CommandContext, client: ControlClient, args: string[], json: boolean): Promise<number> {
  const [kindText, ...keys] = args;
  if (!kindText || keys.length === 0) {
    throw usageError('lookup needs KIND and at least one KEY');
  }
  if (!OBJECT_KINDS.includes(kindText as ObjectKindName)) {
    throw usageError(`unknown kind "${kindText}"; use ${OBJECT_KINDS.join(', ')}`);
  }
  const kind = kindText as ObjectKindName;

  const { lookup: response } = await client.call({ lookup: { keys: keys.map((key) => ({ kind: kindToWire(kind), key })) } });
  const results = (response!.results ?? []).map((result, index) => lookupResultToJson(kind, keys[index]!, result));
  const failed = results.filter((result) => 'error' in result);

  if (json) {
    const output = results.length === 1 ? results[0] : results;
    context.stdout(`${JSON.stringify(output, null, 2)}\n`);
  } else {
    for (const result of results.filter((entry) => !('error' in entry))) {
      context.stdout(formatLookup(result));
    }
  }
  for (const result of failed) {
    const error = (result as { error: { message: string } }).error;
    context.stderr(`cdrctl: ${error.message}\n`);
  }
  return failed.length > 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}

type LookupJson =
  | {
      kind: string;
      key: string;
      score: number;
      verdict: string;
      reasons: string[];
      counters: Record<string, number>;
      listings: unknown[];
      ttlSeconds: number;
      policyVersion: number;
      firstSeen: string | null;
      lastSeen: string | null;
    }
  | { kind: string; key: string; error: { code: number; message: string } };

function lookupResultToJson(kind: ObjectKindName, requested: string, result: impcdr.v1.ILookupResult): LookupJson {
  if (result.error) {
    return { kind, key: requested, error: { code: result.error.code ?? 0, message: result.error.message ?? '' } };
  }
  const reputation = result.reputation!;
  const counters = Object.fromEntries(COUNTER_FIELDS.map((field) => [field, Number(reputation.counters?.[field] ?? 0)]));
  const time = (ms: number | null | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);
  return {
    kind: kindFromWire(reputation.object?.kind) ?? kind,
    key: reputation.object?.key ?? requested,
    score: reputation.score ?? 0,
    verdict: verdictFromWire(reputation.verdict) ?? 'neutral',
    reasons: reputation.reasons ?? [],
    counters,
    listings: reputation.listings ?? [],
    ttlSeconds: reputation.ttlSeconds ?? 0,
    policyVersion: reputation.policyVersion ?? 0,
    firstSeen: time(reputation.firstSeenMs),
    lastSeen: time(reputation.lastSeenMs),
  };
}

function formatLookup(result: LookupJson): string {
  if ('error' in result) {
    return '';
  }
  const counters = Object.entries(result.counters)
    .filter(([, value]) => value > 0)
    .map(([field, value]) => `${field} ${value}`)
    .join(', ');
  return [
    `${result.kind} ${result.key}: ${result.verdict} (score ${result.score}), policy ${result.policyVersion}, ttl ${result.ttlSeconds} s`,
    `  reasons: ${result.reasons.length > 0 ? result.reasons.join('; ') : 'none'}`,
    `  counters: ${counters || 'none'}`,
    `  seen: ${result.firstSeen ?? 'never'} to ${result.lastSeen ?? 'never'}`,
    ...(result.listings.length > 0 ? result.listings.map(formatListing) : ['  listings: none']),
    '',
  ].join('\n');
}

/** Formats one listing as a line: `  listed by drop (block): 127.0.0.2 "reason"`. */
function formatListing(listing: unknown): string {
  const { source, category, returnCode, reason } = listing as impcdr.v1.IListing;
  return `  listed by ${source ?? '-'} (${category || '-'}): ${returnCode || '-'} ${JSON.stringify(reason ?? '')}`;
}

