/**
 * cdrctl: the command line of administrators and technicians. It talks to the repository through the
 * control socket, so it needs no access to the index itself.
 *
 *     cdrctl [--config FILE | --socket PATH] COMMAND [ARGS]
 *     cdrctl help [COMMAND]
 */

import { CdrError } from '../common/errors.js';
import { createContext, EXIT_FAILURE, EXIT_SUCCESS, EXIT_USAGE, usageError, type Command } from './command.js';
import { COMMANDS } from './commands/index.js';
import { commandHelp, fullHelp, usageErrorText } from './usage.js';

/** Splits the global options, which come before the command name, from the command and its arguments. */
function splitGlobalOptions(argv: string[]): { config?: string; socket?: string; help: boolean; rest: string[] } {
  const result: { config?: string; socket?: string; help: boolean; rest: string[] } = { help: false, rest: [] };
  let index = 0;
  while (index < argv.length && argv[index]!.startsWith('-')) {
    const option = argv[index]!;
    const [name, inlineValue] = option.includes('=') ? option.split(/=(.*)/s, 2) : [option, undefined];
    if (name === '--help' || name === '-h') {
      result.help = true;
      index += 1;
      continue;
    }
    if (name !== '--config' && name !== '--socket') {
      throw usageError(`unknown option "${option}" before the command`);
    }
    const value = inlineValue ?? argv[index + 1];
    if (value === undefined || value === '') {
      throw usageError(`${name} needs a value`);
    }
    result[name === '--config' ? 'config' : 'socket'] = value;
    index += inlineValue === undefined ? 2 : 1;
  }
  result.rest = argv.slice(index);
  return result;
}

/** Whether `args` ask for help: `--help` or `-h` anywhere before a `--` separator. */
function asksForHelp(args: string[]): boolean {
  const end = args.indexOf('--');
  return (end === -1 ? args : args.slice(0, end)).some((arg) => arg === '--help' || arg === '-h');
}

function findCommand(name: string): Command {
  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    throw usageError(`unknown command "${name}"`);
  }
  return command;
}

/** Runs cdrctl; a usage error is printed here, because only here is the command it concerns known. */
async function main(argv: string[]): Promise<number> {
  let command: Command | undefined;
  let args: string[] = [];
  try {
    const options = splitGlobalOptions(argv);
    const [name, ...rest] = options.rest;
    args = rest;
    if (options.help || name === 'help') {
      const topic = name === 'help' ? rest[0] : undefined;
      process.stdout.write(topic === undefined ? fullHelp(COMMANDS) : commandHelp(findCommand(topic)));
      return EXIT_SUCCESS;
    }
    if (name === undefined) {
      throw usageError('missing command');
    }

    command = findCommand(name);
    if (asksForHelp(args)) {
      process.stdout.write(commandHelp(command));
      return EXIT_SUCCESS;
    }
    return await command.run(createContext(options.config, options.socket), args);
  } catch (error) {
    const code = error instanceof CdrError ? error.code : (error as { code?: string }).code;
    const message = `${error instanceof Error ? error.message : String(error)}${code ? ` (${code})` : ''}`;
    if (code === 'ERR_CLI_USAGE' || code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(usageErrorText(message, command, args));
      return EXIT_USAGE;
    }
    process.stderr.write(`cdrctl: ${message}\n`);
    return EXIT_FAILURE;
  }
}

main(process.argv.slice(2)).then((code) => process.exit(code));
