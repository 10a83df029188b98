/**
 * The shape of a cdrctl command. Each command lives in `commands/NAME.ts` and is listed in
 * `commands/index.ts`; `main.ts` parses the global options and dispatches.
 */

import { existsSync } from 'node:fs';
import { resolve } from 'node:path';

import { DEVELOPMENT_CONFIG_PATH, loadConfig, PRODUCTION_CONFIG_PATH, resolveUnder, type CdrConfig } from '../common/config.js';
import { CdrError } from '../common/errors.js';
import { ControlClient } from '../../modules/protocol/control-client.js';

/** Exit statuses: 0 success, 1 failure reported by the repository or the system, 2 bad command line. */
export const EXIT_SUCCESS = 0;
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

/** Options and services a command receives besides its own arguments. */
export interface CommandContext {
  /** `--config FILE` as given, if any. */
  configPath: string | undefined;
  /** `--socket PATH` as given, if any. */
  socketPath: string | undefined;
  /** Loads the configuration named by the global options or the default search order. */
  loadConfig(): Readonly<CdrConfig>;
  /** Connects to the repository's control socket; the caller closes the client. */
  connect(): Promise<ControlClient>;
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

export interface Command {
  name: string;
  /** Usage lines for the help text, each starting with the command name. */
  usage: string[];
  run(context: CommandContext, args: string[]): Promise<number>;
}

/** Builds the error for a bad command line; main prints it with the synopsis of the command and exits with 2. */
export function usageError(message: string): CdrError {
  return new CdrError('ERR_CLI_USAGE', message);
}

/** Resolves the configuration path: `--config`, then $IMP_CDR_CONFIG, then the appliance path if present, then ./var. */
export function configPathFor(configPath: string | undefined): string {
  return configPath ?? process.env['IMP_CDR_CONFIG'] ?? (existsSync(PRODUCTION_CONFIG_PATH) ? PRODUCTION_CONFIG_PATH : DEVELOPMENT_CONFIG_PATH);
}

export function createContext(configPath: string | undefined, socketPath: string | undefined): CommandContext {
  let loaded: Readonly<CdrConfig> | undefined;
  const context: CommandContext = {
    configPath,
    socketPath,
    loadConfig() {
      loaded ??= loadConfig(configPathFor(configPath)).config;
      return loaded;
    },
    async connect() {
      if (socketPath) {
        return ControlClient.connect(resolve(socketPath));
      }
      const config = context.loadConfig();
      return ControlClient.connect(resolveUnder(config.paths.run, config.control.socket));
    },
    stdout: (text) => process.stdout.write(text),
    stderr: (text) => process.stderr.write(text),
  };
  return context;
}

/** Connects, runs `action` with the client, and closes the client whether `action` succeeds or throws. */
export async function withControl<T>(context: CommandContext, action: (client: ControlClient) => Promise<T>): Promise<T> {
  const client = await context.connect();
  try {
    return await action(client);
  } finally {
    client.close();
  }
}
