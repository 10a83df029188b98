/**
 * `cdrctl feeds list | add | remove | refresh | status | export | dnsbl`: the feed mirror, its exports
 * and the query-through DNSBL counters.
 */

import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';

import { CdrError } from '../../common/errors.js';
import type { ControlClient } from '../../../modules/protocol/control-client.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { EXIT_FAILURE, EXIT_SUCCESS, usageError, withControl, type Command, type CommandContext } from '../command.js';

export const feedsCommand: Command = {
  name: 'feeds',
  usage: [
    'feeds list                            list the feeds with their version, entries, age and last error',
    'feeds add ID SOURCE FORMAT [OPTIONS]  add a feed and import it now; SOURCE is a file path or http(s) URL,',
    '                                      FORMAT one of ip4set, ip4trie, ip6trie, dnset, combined, iplist, domainlist, dmarc;',
    '                                      --zone NAME (served by the DNS front), --category WORD (default block),',
    '                                      --refresh SECONDS (0: manual), --max-bytes BYTES, --timeout MS,',
    '                                      --ca FILE (PEM CA certificates that an https source must chain to)',
    'feeds remove ID                       remove a feed and its stored versions, on both nodes of a pair',
    'feeds refresh [ID]                    fetch one feed, or every feed, now on this node',
    'feeds status ID                       show one feed in detail, with the bad lines of its version',
    'feeds export FORMAT FILE              write the feeds in force as rbldnsd (combined) or jsonl',
    'feeds dnsbl                           show the query-through DNSBL counters',
  ],
  async run(context, args) {
    return withControl(context, (client) => feeds(context, client, args));
  },
};

const OPTIONS: Record<string, keyof impcdr.v1.IFeedDefinition> = {
  '--zone': 'zone',
  '--category': 'category',
  '--refresh': 'refreshSeconds',
  '--max-bytes': 'maxBytes',
  '--timeout': 'timeoutMs',
  '--ca': 'caPem',
};

async function feeds(context: CommandContext, client: ControlClient, args: string[]): Promise<number> {
  const [subcommand, ...rest] = args;
  switch (subcommand) {
    case 'list': {
      const { feeds: list } = await client.call({ feedList: {} });
      context.stdout(formatTable(list ?? {}));
      return EXIT_SUCCESS;
    }
    case 'add': {
      const [id, source, format, ...options] = rest;
      if (!id || !source || !format) {
        throw usageError('feeds add needs ID, SOURCE and FORMAT');
      }
      // A URL is passed as given, so that the repository names an unsupported scheme; a path is made absolute.
      const feed: impcdr.v1.IFeedDefinition = { id, source: /^[a-z][a-z0-9+.-]*:\/\//i.test(source) ? source : resolve(source), format };
      for (let index = 0; index < options.length; index += 2) {
        const field = OPTIONS[options[index]!];
        const value = options[index + 1];
        if (!field || value === undefined) {
          throw usageError(`unknown option or missing value: ${options[index]}; options are ${Object.keys(OPTIONS).join(', ')}`);
        }
        if (field === 'caPem') {
          // cdrctl reads the file, so that the repository stores the certificates and sends them to the peer.
          feed.caPem = readCaFile(value);
        } else if (field === 'zone' || field === 'category') {
          feed[field] = value;
        } else {
          if (!/^[0-9]+$/.test(value)) {
            throw usageError(`${options[index]} takes a whole number, got ${value}`);
          }
          (feed as Record<string, number>)[field] = Number(value);
        }
      }
      let added: impcdr.v1.IFeedList | null | undefined;
      try {
        ({ feeds: added } = await client.call({ feedAdd: { feed } }));
      } catch (error) {
        throw withOptionNames(error);
      }
      const info = added!.feeds![0]!;
      context.stdout(formatDetail(info, added!.nodeId ?? ''));
      if (info.lastErrorCode) {
        // The feed stays defined and is fetched again at its next refresh.
        context.stderr(`cdrctl: feed ${id} added, but its first import failed: ${info.lastError} (${info.lastErrorCode})\n`);
        return EXIT_FAILURE;
      }
      return EXIT_SUCCESS;
    }
    case 'remove': {
      if (rest.length !== 1) {
        throw usageError(`feeds remove needs exactly one ID, got ${rest.length}`);
      }
      await client.call({ feedRemove: { id: rest[0] } });
      context.stdout(`feed ${rest[0]} removed\n`);
      return EXIT_SUCCESS;
    }
    case 'refresh': {
      if (rest.length > 1) {
        throw usageError(`feeds refresh takes at most one ID, got ${rest.length}`);
      }
      const { feeds: refreshed } = await client.call({ feedRefresh: { id: rest[0] ?? '' } });
      context.stdout(formatTable(refreshed ?? {}));
      return (refreshed?.feeds ?? []).some((info) => info.lastErrorCode) ? EXIT_FAILURE : EXIT_SUCCESS;
    }
    case 'status': {
      if (rest.length !== 1) {
        throw usageError(`feeds status needs exactly one ID, got ${rest.length}`);
      }
      const { feeds: status } = await client.call({ feedStatus: { id: rest[0] } });
      context.stdout(formatDetail(status!.feeds![0]!, status!.nodeId ?? ''));
      return EXIT_SUCCESS;
    }
    case 'export': {
      const [format, file] = rest;
      if (!format || !file || rest.length !== 2) {
        throw usageError(`feeds export needs FORMAT (rbldnsd or jsonl) and FILE, got ${rest.length} arguments`);
      }
      const { export: written } = await client.call({ export: { format, path: resolve(file) } });
      context.stdout(`${written!.entries} entries, ${written!.bytes} bytes written to ${written!.path}\n`);
      return EXIT_SUCCESS;
    }
    case 'dnsbl': {
      const { dnsblStatus } = await client.call({ dnsblStatus: {} });
      const lines = ['ZONE\tMADE\tSAVED\tBUDGET\tERRORS'];
      for (const list of dnsblStatus?.lists ?? []) {
        const budget = Number(list.dailyBudget) > 0 ? `${list.budgetUsed}/${list.dailyBudget}` : `${list.budgetUsed}/unlimited`;
        lines.push(`${list.zone}\t${list.queriesMade}\t${list.queriesSaved}\t${budget}\t${list.errors}`);
      }
      context.stdout(`${lines.join('\n')}\n`);
      return EXIT_SUCCESS;
    }
    default:
      throw usageError(
        subcommand === undefined
          ? 'feeds needs a subcommand: list, add, remove, refresh, status, export or dnsbl'
          : `unknown feeds subcommand "${subcommand}"; expected list, add, remove, refresh, status, export or dnsbl`,
      );
  }
}

function age(ms: number | Long | null | undefined): string {
  const value = Number(ms ?? 0);
  if (value === 0) {
    return 'never';
  }
  return duration(Date.now() - value);
}

/** Formats a span of milliseconds as whole seconds, minutes or hours. */
function duration(ms: number): string {
  const seconds = Math.max(0, Math.round(ms / 1000));
  if (seconds < 120) {
    return `${seconds}s`;
  }
  return seconds < 7200 ? `${Math.round(seconds / 60)}m` : `${Math.round(seconds / 3600)}h`;
}

type Long = { toNumber(): number };

/**
 * Names the command-line option in a definition error of the repository, which names the field:
 * `feed refreshSeconds must be ...` becomes `feed refreshSeconds (--refresh) must be ...`.
 */
function withOptionNames(error: unknown): unknown {
  if (!(error instanceof CdrError) || error.code !== 'ERR_FEED_INVALID') {
    return error;
  }
  let message = error.message;
  for (const [option, field] of Object.entries(OPTIONS)) {
    message = message.replace(new RegExp(`^feed ${field} `), `feed ${field} (${option}) `);
  }
  return message === error.message ? error : new CdrError(error.code, message, { cause: error, details: error.details });
}

/** Reads the PEM file of `--ca`; a file without a certificate is a usage error, not "no CA". */
function readCaFile(file: string): string {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new CdrError('ERR_CLI_USAGE', `cannot read the CA file ${file}: ${(error as Error).message}`, { cause: error });
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw usageError(`the CA file ${file} contains no PEM certificate (-----BEGIN CERTIFICATE-----)`);
  }
  return text;
}

/** Formats a node id, marking the node that sent the response. */
function nodeName(nodeId: string | null | undefined, self: string): string {
  if (!nodeId) {
    return '-';
  }
  return nodeId === self ? `${nodeId} (this node)` : nodeId;
}

function formatTable(list: impcdr.v1.IFeedList): string {
  const lines = ['ID\tFORMAT\tVERSION\tENTRIES\tAGE\tLAST SUCCESS\tBY\tLAST ERROR'];
  for (const info of list.feeds ?? []) {
    lines.push(
      [
        info.definition?.id,
        info.definition?.format,
        info.version,
        info.entries,
        age(info.importedMs),
        age(info.lastSuccessMs),
        info.lastSuccessNodeId || '-',
        info.lastErrorCode ? `${info.lastErrorCode}: ${info.lastError}` : '-',
      ].join('\t'),
    );
  }
  return `${lines.join('\n')}\n`;
}

function formatDetail(info: impcdr.v1.IFeedInfo, self: string): string {
  const definition = info.definition ?? {};
  const lastSuccess = Number(info.lastSuccessMs ?? 0) === 0 ? 'never' : `${age(info.lastSuccessMs)} ago by ${nodeName(info.lastSuccessNodeId, self)}${info.lastSuccessUnchanged ? ', source unchanged' : ''}`;
  const lines = [
    `id:            ${definition.id}`,
    `source:        ${definition.source}`,
    `format:        ${definition.format}`,
    `zone:          ${definition.zone || '-'}`,
    `category:      ${definition.category}`,
    `refresh:       ${Number(definition.refreshSeconds) === 0 ? 'manual' : `${definition.refreshSeconds}s`}`,
    ...(/^https:/i.test(definition.source ?? '') ? [`ca:            ${definition.caPem ? 'feed CA certificates' : 'system CAs'}`] : []),
    `version:       ${info.version}${Number(info.version) > 0 ? `, imported ${age(info.importedMs)} ago` : ''}`,
    `entries:       ${info.entries} (${info.exclusions} exclusions), ${info.bytes} bytes, ${info.encoding || '-'}`,
    `bad lines:     ${info.badLines}`,
    ...(info.lineErrors ?? []).map((lineError) => `  ${definition.source}:${lineError.line}: ${lineError.reason}`),
    `preferred:     ${nodeName(info.preferredNodeId, self)}`,
    `next refresh:  ${nextRefresh(info, self)}`,
    `last success:  ${lastSuccess}`,
    `last error:    ${info.lastErrorCode ? `${info.lastErrorCode}: ${info.lastError} (this node, ${age(info.lastErrorMs)} ago)` : '-'}`,
  ];
  return `${lines.join('\n')}\n`;
}

/** Formats when this node fetches the feed next, with the condition when it is not the preferred node. */
function nextRefresh(info: impcdr.v1.IFeedInfo, self: string): string {
  const dueMs = Number(info.nextRefreshMs ?? 0);
  if (dueMs === 0) {
    return 'manual';
  }
  const when = dueMs <= Date.now() ? 'now' : `in ${duration(dueMs - Date.now())}`;
  return info.preferredNodeId === self || !self ? `${when} on this node` : `${when} on this node, unless ${info.preferredNodeId} refreshes first`;
}
