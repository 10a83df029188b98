/**
 * `cdrctl audit [--limit N] [--json]`: the newest audit entries of this node, that is replication
 * conflicts (a policy or feed value of the peer discarded for a later local one) and their outcome.
 */

import { parseArgs } from 'node:util';

import type { ControlClient } from '../../../modules/protocol/control-client.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { EXIT_SUCCESS, usageError, withControl, type Command, type CommandContext } from '../command.js';

/** Most entries one request returns. */
const MAX_LIMIT = 1000;
/** Characters of each value the text output shows; `--json` shows them whole. */
const TEXT_VALUE_CHARS = 160;

export const auditCommand: Command = {
  name: 'audit',
  usage: ['audit [--limit N] [--json]            replication conflicts recorded on this node, newest last'],
  async run(context, args) {
    const { values } = parseArgs({ args, options: { limit: { type: 'string', default: '100' }, json: { type: 'boolean', default: false } }, strict: true });
    const limit = Number(values.limit);
    if (!/^[0-9]+$/.test(values.limit) || limit < 1 || limit > MAX_LIMIT) {
      throw usageError(`--limit takes a whole number from 1 to ${MAX_LIMIT}, got ${values.limit}`);
    }
    return withControl(context, (client) => audit(context, client, limit, values.json));
  },
};

async function audit(context: CommandContext, client: ControlClient, limit: number, json: boolean): Promise<number> {
  const { audit: list } = await client.call({ audit: { limit } });
  const entries = (list?.entries ?? []).map(entryToJson);
  if (json) {
    context.stdout(`${JSON.stringify(entries, null, 2)}\n`);
    return EXIT_SUCCESS;
  }
  if (entries.length === 0) {
    context.stdout('no audit entries\n');
    return EXIT_SUCCESS;
  }
  const lines = entries.flatMap((entry) => [
    `${entry.at} ${entry.kind} ${entry.key} (peer ${entry.peer})`,
    `  kept:      ${shorten(JSON.stringify(entry.kept))}`,
    `  discarded: ${shorten(JSON.stringify(entry.discarded))}`,
  ]);
  context.stdout(`${lines.join('\n')}\n`);
  return EXIT_SUCCESS;
}

function entryToJson(entry: impcdr.v1.IAuditEntry): { at: string; kind: string; key: string; peer: string; kept: unknown; discarded: unknown } {
  return {
    at: new Date(Number(entry.atMs ?? 0)).toISOString(),
    kind: entry.kind ?? '',
    key: entry.key ?? '',
    peer: entry.peer ?? '',
    kept: parseValue(entry.keptJson ?? 'null'),
    discarded: parseValue(entry.discardedJson ?? 'null'),
  };
}

/** Parses a value's JSON; a value the repository cut to fit the reply stays the cut text. */
function parseValue(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

function shorten(text: string): string {
  return text.length > TEXT_VALUE_CHARS ? `${text.slice(0, TEXT_VALUE_CHARS)}...` : text;
}
