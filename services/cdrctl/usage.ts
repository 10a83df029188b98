/**
 * Help and usage-error text of cdrctl. `cdrctl help` and `cdrctl --help` print every command;
 * `cdrctl COMMAND --help` prints one command. A usage error prints one line naming the problem, the
 * synopsis of the command it concerns and where to read more, because the whole help text would push
 * the problem off the screen.
 */

import { DEVELOPMENT_CONFIG_PATH, PRODUCTION_CONFIG_PATH } from '../common/config.js';
import type { Command } from './command.js';

/** Synopsis of cdrctl as a whole. */
export const CDRCTL_SYNOPSIS = 'cdrctl [--config FILE | --socket PATH] COMMAND [ARGS]';

const GLOBAL_OPTIONS = `options (before COMMAND):
  --config FILE   configuration to find the control socket in (default: $IMP_CDR_CONFIG,
                  then ${PRODUCTION_CONFIG_PATH} if it exists, then ./${DEVELOPMENT_CONFIG_PATH})
  --socket PATH   control socket path; overrides --config
  --help, -h      print this help; after COMMAND, print the help of COMMAND
`;

/** Returns the help text of every command, for `cdrctl help` and `cdrctl --help`. */
export function fullHelp(commands: readonly Command[]): string {
  const lines = commands.flatMap((command) => command.usage.map((line) => `  ${line}`));
  return `usage: ${CDRCTL_SYNOPSIS}\n\ncommands:\n${lines.join('\n')}\n  help [COMMAND]                        print this help, or the help of COMMAND\n\n${GLOBAL_OPTIONS}`;
}

/** Returns the help text of one command, for `cdrctl COMMAND --help` and `cdrctl help COMMAND`. */
export function commandHelp(command: Command): string {
  // "cdrctl " is 7 characters, so continuation lines move right by as much to stay under their column.
  const lines = command.usage.map((line) => (/^\s/.test(line) ? `       ${line}` : `cdrctl ${line}`));
  return `usage:\n${lines.map((line) => `  ${line}`).join('\n')}\n\n${GLOBAL_OPTIONS}`;
}

/**
 * Returns the synopses (usage lines without their descriptions) of `command`. When the first argument
 * names one of its subcommands, only that subcommand's synopses are returned.
 */
export function synopses(command: Command, args: readonly string[]): string[] {
  const all = command.usage.filter((line) => !/^\s/.test(line)).map((line) => line.split(/\s{2,}/)[0]!.trim());
  const subcommand = args[0];
  const matching = all.filter((synopsis) => synopsis.split(' ')[1] === subcommand);
  return matching.length > 0 ? matching : all;
}

/**
 * Formats a usage error: the problem on one line, then the synopses of `command` (or of cdrctl when
 * the command is unknown), then a hint naming the help commands.
 */
export function usageErrorText(message: string, command: Command | undefined, args: readonly string[]): string {
  const usage = command ? synopses(command, args).map((synopsis) => `cdrctl ${synopsis}`) : [CDRCTL_SYNOPSIS];
  const hint = command
    ? `Run "cdrctl ${command.name} --help" for the options of ${command.name}, or "cdrctl help" for every command.`
    : 'Run "cdrctl help" for every command.';
  return `cdrctl: ${message}\nusage: ${usage.join('\n       ')}\n${hint}\n`;
}
