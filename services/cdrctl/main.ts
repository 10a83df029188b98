/**
 * cdrctl: the command line of administrators and technicians. It talks to the repository through the
 * control socket, so it needs no access to the index itself.
 *
 *     cdrctl [--config FILE | --socket PATH] COMMAND [ARGS]
 */

import { DEVELOPMENT_CONFIG_PATH, PRODUCTION_CONFIG_PATH } from '../common/config.js';
import { CdrError } from '../common/errors.js';
import { createContext, EXIT_FAILURE, EXIT_USAGE, usageError } from './command.js';
import { COMMANDS } from './commands/index.js';

function usageText(): string {
  const commands = COMMANDS.flatMap((command) => command.usage.map((line) => `  ${line}`)).join('\n');
  return `usage: cdrctl [--config FILE | --socket PATH] COMMAND

commands:
${commands}

options:
  --config FILE   configuration to find the control socket in (default: $IMP_CDR_CONFIG,
                  then ${PRODUCTION_CONFIG_PATH} if it exists, then ./${DEVELOPMENT_CONFIG_PATH})
  --socket PATH   control socket path; overrides --config
`;
}

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

async function main(argv: string[]): Promise<number> {
  const options = splitGlobalOptions(argv);
  const [name, ...args] = options.rest;
  if (options.help || !name) {
    process.stdout.write(usageText());
    return options.help ? 0 : EXIT_USAGE;
  }

  const command = COMMANDS.find((candidate) => candidate.name === name);
  if (!command) {
    throw usageError(`unknown command "${name}"`);
  }
  return command.run(createContext(options.config, options.socket), args);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const code = error instanceof CdrError ? error.code : (error as { code?: string }).code;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`cdrctl: ${message}${code ? ` (${code})` : ''}\n`);
    if (code === 'ERR_CLI_USAGE' || code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(usageText());
      process.exit(EXIT_USAGE);
    }
    process.exit(EXIT_FAILURE);
  },
);
