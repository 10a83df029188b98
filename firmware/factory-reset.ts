/**
 * Factory reset of a node, in this order: check the default configuration, stop the IMP-CDR services,
 * check that neither the repository nor the pairing daemon still accepts connections on its socket, remove the
 * node's state under `paths.state`, remove the console's interface files and write the default
 * configuration over cdr.yaml. A failed check or stop ends the reset before anything is removed.
 *
 * The firmware state (`<paths.state>/firmware/`: installed versions, kept payloads and history) is
 * kept, because a reset changes no installed software and rollback still needs the payloads.
 */

import { execFile } from 'node:child_process';
import { chmodSync, chownSync, copyFileSync, existsSync, readdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { connect } from 'node:net';
import { join, relative, resolve, sep } from 'node:path';
import { promisify } from 'node:util';

import { parseConfig, resolveUnder, type CdrConfig } from '../services/common/config.js';
import { CdrError } from '../services/common/errors.js';

const execFileAsync = promisify(execFile);

/** Path of the pristine copy of `/etc/imp-cdr/cdr.yaml` that the package installs and a reset restores. */
export const PACKAGED_DEFAULT_CONFIG_PATH = '/opt/imp-cdr/defaults/cdr.yaml';

/** Units a reset stops: the same list the package's prerm stops. */
export const RESET_STOPPED_UNITS = ['imp-cdr.target', 'imp-cdr-repository.service', 'imp-cdr-snmp.service', 'imp-cdr-pairing.service'] as const;

/** Time `systemctl stop` may take, in milliseconds: twice DefaultTimeoutStopSec=90s of systemd-system.conf(5). */
const STOP_TIMEOUT_MS = 180_000;
/** Time a socket check waits for a connection, in milliseconds. */
const SOCKET_CHECK_TIMEOUT_MS = 2000;

/** Runs a command such as `systemctl stop ...`; rejects with the command's error output when it fails. */
export type CommandRunner = (file: string, args: readonly string[]) => Promise<void>;

/** `CommandRunner` that runs the program found on PATH, as systemd's tools are on an appliance. */
export const runCommand: CommandRunner = async (file, args) => {
  try {
    await execFileAsync(file, [...args], { timeout: STOP_TIMEOUT_MS });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr?.trim();
    throw new Error(`${file} ${args.join(' ')} failed: ${stderr || (error as Error).message}`, { cause: error });
  }
};

export interface FactoryResetOptions {
  /** The configuration in force, for `paths.state` and the state entries it names. */
  config: Readonly<CdrConfig>;
  /** The cdr.yaml file the services read; the reset writes the default configuration over it. */
  configPath: string;
  /** The default configuration to restore. @defaultValue {@link PACKAGED_DEFAULT_CONFIG_PATH} at the caller */
  defaultConfigPath: string;
  /** Folder of the console's systemd-networkd files. */
  networkRoot: string;
  controlSocketPath: string;
  pairingSocketPath: string;
  run: CommandRunner;
}

/** Result of a reset, listed for the technician. */
export interface FactoryResetReport {
  /** Paths removed, in the order removed. */
  removed: string[];
  /** Configured state paths that are not inside `paths.state` (or are that folder itself), left in place. */
  leftOutside: string[];
}

/**
 * Returns the paths of this node's state that a reset removes: the index, node id, peer record, TLS
 * material, pairing host key and peer endpoint, the IMP client bundle and spool folders and the
 * console state. Paths that are not inside `paths.state`, such as an absolute `tls.dir` elsewhere or
 * `tls.dir: .`, are returned apart, because removing them could remove files that are not node state.
 */
export function nodeStatePaths(config: Readonly<CdrConfig>): { inside: string[]; outside: string[] } {
  const state = config.paths.state;
  const candidates = [
    join(state, 'index'),
    join(state, 'node-id'),
    join(state, 'peer.json'),
    resolveUnder(state, config.tls.dir),
    resolveUnder(state, config.pairing.hostKey),
    join(state, 'pairing'),
    resolveUnder(state, config.impClient.bundleDir),
    resolveUnder(state, config.impClient.spoolDir),
    join(state, 'console'),
  ];
  const unique = [...new Set(candidates.map((path) => resolve(path)))];
  const isInside = (path: string) => {
    const fromState = relative(state, path);
    return fromState !== '' && fromState !== '..' && !fromState.startsWith(`..${sep}`);
  };
  return { inside: unique.filter(isInside), outside: unique.filter((path) => !isInside(path)) };
}

/** Reads and checks the default configuration. @throws CdrError `ERR_RESET_DEFAULT_CONFIG` */
export function readDefaultConfig(defaultConfigPath: string, configPath: string): string {
  let text: string;
  try {
    text = readFileSync(defaultConfigPath, 'utf8');
  } catch (error) {
    throw new CdrError('ERR_RESET_DEFAULT_CONFIG', `cannot read the default configuration ${defaultConfigPath}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
      details: { path: defaultConfigPath },
    });
  }
  try {
    parseConfig(text, configPath);
  } catch (error) {
    throw new CdrError('ERR_RESET_DEFAULT_CONFIG', `the default configuration ${defaultConfigPath} is invalid: ${(error as Error).message}`, {
      cause: error,
      details: { path: defaultConfigPath },
    });
  }
  return text;
}

/**
 * Stops the services, removes the node state and restores the default configuration.
 *
 * @throws CdrError `ERR_RESET_DEFAULT_CONFIG`, `ERR_RESET_STOP_FAILED` or `ERR_RESET_STILL_RUNNING`
 *   before anything is removed
 */
export async function factoryReset(options: FactoryResetOptions): Promise<FactoryResetReport> {
  readDefaultConfig(options.defaultConfigPath, options.configPath);

  try {
    await options.run('systemctl', ['stop', ...RESET_STOPPED_UNITS]);
  } catch (error) {
    throw new CdrError('ERR_RESET_STOP_FAILED', `stopping the services failed, so nothing was removed: ${(error as Error).message}`, { cause: error });
  }
  for (const [daemon, socketPath] of [
    ['repository', options.controlSocketPath],
    ['pairing daemon', options.pairingSocketPath],
  ] as const) {
    if (await socketAnswers(socketPath)) {
      throw new CdrError('ERR_RESET_STILL_RUNNING', `the ${daemon} still accepts connections on ${socketPath} after systemctl stop, so nothing was removed; stop it and try again`, {
        details: { socketPath },
      });
    }
  }

  const { inside, outside } = nodeStatePaths(options.config);
  const removed: string[] = [];
  for (const path of inside) {
    if (existsSync(path)) {
      rmSync(path, { recursive: true, force: true });
      removed.push(path);
    }
  }
  for (const name of listConsoleNetworkFiles(options.networkRoot)) {
    const path = join(options.networkRoot, name);
    rmSync(path);
    removed.push(path);
  }

  writeDefaultConfig(options.defaultConfigPath, options.configPath);
  return { removed, leftOutside: outside.filter((path) => existsSync(path)) };
}

/** Lists the systemd-networkd files the console writes, `10-imp-cdr-<role>.network`. */
export function listConsoleNetworkFiles(dir: string): string[] {
  try {
    return readdirSync(dir).filter((name) => /^10-imp-cdr-[a-z]+\.network$/.test(name));
  } catch {
    return [];
  }
}

/**
 * Copies the default configuration over `configPath` through a temporary file and a rename, keeping the
 * mode and owner of the file it replaces (root:imp-cdr, 0640 on an appliance).
 */
function writeDefaultConfig(defaultConfigPath: string, configPath: string): void {
  const temporary = `${configPath}.tmp`;
  copyFileSync(defaultConfigPath, temporary);
  if (existsSync(configPath)) {
    const previous = statSync(configPath);
    chmodSync(temporary, previous.mode & 0o7777);
    chownSync(temporary, previous.uid, previous.gid);
  }
  renameSync(temporary, configPath);
}

/** Resolves whether a process accepts connections on the Unix socket at `path`; a timeout counts as yes. */
function socketAnswers(path: string): Promise<boolean> {
  return new Promise((resolveCheck) => {
    const socket = connect(path);
    const finish = (answers: boolean) => {
      socket.destroy();
      resolveCheck(answers);
    };
    socket.setTimeout(SOCKET_CHECK_TIMEOUT_MS, () => finish(true));
    socket.once('connect', () => finish(true));
    socket.once('error', () => finish(false));
  });
}
