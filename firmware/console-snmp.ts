/**
 * Console option 4, SNMP settings: shows the `snmp` section of cdr.yaml without its secrets, sets the
 * SNMPv3 user of the standalone agent and adds or removes trap targets. Each change is checked with the
 * configuration schema and the SNMP cross-key checks before the file is written, and the previous file
 * is kept for "restore the previous configuration". imp-cdr-snmp reads the file when it starts.
 */

import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import { parseDocument } from 'yaml';

import { parseConfig } from '../services/common/config.js';
import type { SnmpConfig, SnmpTrapTargetConfig, SnmpUserConfig } from '../services/common/config-schema.js';
import { CdrError } from '../services/common/errors.js';
import { MIN_PASSPHRASE_LENGTH, resolveSnmpSettings } from '../services/snmp/settings.js';
import { describeError, type ConsoleIo } from './console-io.js';

export interface SnmpMenuOptions {
  /** The cdr.yaml that the services read. */
  configPath: string;
  /** Copy of the file as it was before the last change. */
  previousConfigPath: string;
}

/** Maximum USM user name length, as the configuration schema allows (RFC 3414 allows 32 octets). */
const MAX_USER_NAME_LENGTH = 32;
const DEFAULT_TRAP_PORT = 162;

const SNMP_MENU = [' 1) Set the SNMPv3 user', ' 2) Add a trap target', ' 3) Remove a trap target', ' 0) Back to the main menu'];

/** Shows the SNMP settings, then runs one change chosen by the technician. */
export async function runSnmpMenu(io: ConsoleIo, options: SnmpMenuOptions): Promise<void> {
  let settings: SnmpConfig;
  try {
    settings = readSnmpSettings(options.configPath);
  } catch (error) {
    io.print(`SNMP settings unavailable: ${describeError(error)}`);
    return;
  }
  for (const line of describeSnmpSettings(settings)) {
    io.print(line);
  }
  io.print(SNMP_MENU.join('\n'));

  const choice = await io.ask('SNMP choice: ');
  switch (choice) {
    case undefined:
    case '':
    case '0':
      return;
    case '1':
      await setUser(io, options);
      return;
    case '2':
      await addTrapTarget(io, options, settings);
      return;
    case '3':
      await removeTrapTarget(io, options, settings);
      return;
    default:
      io.print(`Invalid choice "${choice}"; enter a number from 0 to 3.`);
  }
}

/** Reads and checks the SNMP settings of the configuration file at `configPath`. */
export function readSnmpSettings(configPath: string): SnmpConfig {
  return resolveSnmpSettings(parseConfig(readFileSync(configPath, 'utf8'), configPath).snmp);
}

/** Describes `settings` in lines for the screen; passphrases and communities are never included. */
export function describeSnmpSettings(settings: SnmpConfig): string[] {
  const { standalone } = settings;
  const lines = [
    settings.mode === 'agentx'
      ? `SNMP mode agentx: registers with the master agent at ${settings.agentx.host}:${settings.agentx.port}; the users and trap targets below apply in standalone mode only.`
      : `SNMP mode standalone: agent on ${standalone.host}:${standalone.port} (UDP).`,
    `Engine id: ${standalone.engineId || 'generated at each start'}`,
  ];

  lines.push(standalone.users.length === 0 ? 'SNMPv3 users: none' : 'SNMPv3 users:');
  for (const user of standalone.users) {
    const privacy = user.level === 'authPriv' ? `, privacy ${user.privProtocol}` : '';
    lines.push(`  ${user.name}: ${user.level}, authentication ${user.authProtocol}${privacy}`);
  }
  lines.push(`v2c communities: ${standalone.communities.length} (not shown)`);

  lines.push(standalone.trapTargets.length === 0 ? 'Trap targets: none' : 'Trap targets:');
  standalone.trapTargets.forEach((target, position) => {
    lines.push(`  ${position + 1}) ${target.host}:${target.port} ${target.user ? `as SNMPv3 user ${target.user}` : 'with a v2c community'}`);
  });
  return lines;
}

/**
 * Applies `change` to the `snmp.standalone` section of the file at `configPath`, checks the result with the
 * configuration schema and the SNMP cross-key checks, copies the current file to `previousConfigPath`
 * and replaces the file. Comments and the other sections stay as they are.
 *
 * @throws CdrError `ERR_CONFIG_*` or `ERR_SNMP_CONFIG_INVALID` when the result is invalid; nothing is written then
 */
export function updateSnmpStandalone(
  configPath: string,
  previousConfigPath: string,
  change: (standalone: { engineId: string; users: Partial<SnmpUserConfig>[]; trapTargets: Partial<SnmpTrapTargetConfig>[] }) => void,
): void {
  const text = readFileSync(configPath, 'utf8');
  const document = parseDocument(text);
  const current = (document.getIn(['snmp', 'standalone']) ?? undefined) as { toJSON(): unknown } | undefined;
  const currentValues = (current?.toJSON() ?? {}) as { engineId?: string; users?: Partial<SnmpUserConfig>[]; trapTargets?: Partial<SnmpTrapTargetConfig>[] };
  const standalone = {
    engineId: currentValues.engineId ?? '',
    users: currentValues.users ?? [],
    trapTargets: currentValues.trapTargets ?? [],
  };
  change(standalone);

  if (standalone.engineId) {
    document.setIn(['snmp', 'standalone', 'engineId'], standalone.engineId);
  }
  document.setIn(['snmp', 'standalone', 'users'], standalone.users);
  document.setIn(['snmp', 'standalone', 'trapTargets'], standalone.trapTargets);
  const updated = document.toString();
  resolveSnmpSettings(parseConfig(updated, configPath).snmp);

  // The file contains the passphrases, so the new one keeps the mode of the old one.
  const mode = statSync(configPath).mode & 0o777;
  mkdirSync(dirname(previousConfigPath), { recursive: true, mode: 0o750 });
  copyFileSync(configPath, previousConfigPath);
  writeFileSync(`${configPath}.tmp`, updated, { mode });
  renameSync(`${configPath}.tmp`, configPath);
}

/**
 * Generates an SNMP engine id (RFC 3411 SnmpEngineID): the enterprise number with its top bit set, the
 * format octet 5 (octets assigned by the administrator) and 8 random octets, as hex.
 */
export function generateEngineId(enterpriseNumber: number): string {
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE((enterpriseNumber | 0x8000_0000) >>> 0, 0);
  prefix.writeUInt8(5, 4);
  return Buffer.concat([prefix, randomBytes(8)]).toString('hex');
}

/** Describes a failed check without the rejected value, which may be a passphrase. */
function describeRejection(error: unknown): string {
  if (error instanceof CdrError) {
    return `${error.message.replace(/, got .*$/s, '')} (${error.code})`;
  }
  return describeError(error);
}

async function askPassphrase(io: ConsoleIo, label: string): Promise<string | undefined> {
  const first = await io.ask(`${label} (at least ${MIN_PASSPHRASE_LENGTH} characters): `, true);
  if (!first) {
    return undefined;
  }
  if (first.length < MIN_PASSPHRASE_LENGTH) {
    io.print(`Invalid ${label.toLowerCase()}: it has ${first.length} characters; expected at least ${MIN_PASSPHRASE_LENGTH}. Nothing was changed.`);
    return undefined;
  }
  const second = await io.ask(`Repeat the ${label.toLowerCase()}: `, true);
  if (second !== first) {
    io.print(`The two entries of the ${label.toLowerCase()} differ; nothing was changed.`);
    return undefined;
  }
  return first;
}

/** Sets the SNMPv3 user (authPriv, SHA-256 and AES-128), replacing a user of the same name. */
async function setUser(io: ConsoleIo, options: SnmpMenuOptions): Promise<void> {
  const name = await io.ask(`SNMPv3 user name (1 to ${MAX_USER_NAME_LENGTH} characters, empty to cancel): `);
  if (!name) {
    return;
  }
  if (name.length > MAX_USER_NAME_LENGTH || /\s/.test(name)) {
    io.print(`Invalid user name "${name}"; expected 1 to ${MAX_USER_NAME_LENGTH} characters without spaces.`);
    return;
  }
  const authPassphrase = await askPassphrase(io, 'Authentication passphrase');
  if (authPassphrase === undefined) {
    return;
  }
  const privPassphrase = await askPassphrase(io, 'Privacy passphrase');
  if (privPassphrase === undefined) {
    return;
  }

  const user: SnmpUserConfig = { name, level: 'authPriv', authProtocol: 'sha256', authPassphrase, privProtocol: 'aes128', privPassphrase };
  try {
    updateSnmpStandalone(options.configPath, options.previousConfigPath, (standalone) => {
      const position = standalone.users.findIndex((existing) => existing.name === name);
      if (position === -1) {
        standalone.users.push(user);
      } else {
        standalone.users[position] = user;
      }
    });
  } catch (error) {
    io.print(`SNMP settings not changed: ${describeRejection(error)}`);
    return;
  }
  io.print(`SNMPv3 user ${name} set (authPriv, sha256, aes128) in ${options.configPath}; restart imp-cdr-snmp to apply it.`);
}

/** Adds a trap target that the SNMPv3 user sends to; generates a fixed engine id when there is none. */
async function addTrapTarget(io: ConsoleIo, options: SnmpMenuOptions, settings: SnmpConfig): Promise<void> {
  const users = settings.standalone.users;
  if (users.length === 0) {
    io.print('There is no SNMPv3 user to send traps; set one first (choice 1).');
    return;
  }

  const host = await io.ask('Trap receiver address (empty to cancel): ');
  if (!host) {
    return;
  }
  if (/\s/.test(host)) {
    io.print(`Invalid trap receiver address "${host}"; expected an IP address or host name without spaces.`);
    return;
  }
  const portText = await io.ask(`Trap receiver UDP port (empty for ${DEFAULT_TRAP_PORT}): `);
  if (portText === undefined) {
    return;
  }
  const port = portText === '' ? DEFAULT_TRAP_PORT : Number(portText);
  if (!/^[0-9]*$/.test(portText) || !Number.isInteger(port) || port < 1 || port > 65535) {
    io.print(`Invalid port "${portText}"; expected an integer from 1 to 65535.`);
    return;
  }

  let user = users[0]!.name;
  if (users.length > 1) {
    const chosen = await io.ask(`SNMPv3 user that sends the traps (${users.map((each) => each.name).join(', ')}): `);
    if (!chosen) {
      return;
    }
    user = chosen;
  }

  let generatedEngineId: string | undefined;
  try {
    updateSnmpStandalone(options.configPath, options.previousConfigPath, (standalone) => {
      // An SNMPv3 trap receiver must know the sender's engine id, so it must stay the same across restarts.
      if (!standalone.engineId) {
        generatedEngineId = generateEngineId(settings.enterpriseNumber);
        standalone.engineId = generatedEngineId;
      }
      standalone.trapTargets.push({ host, port, user });
    });
  } catch (error) {
    io.print(`SNMP settings not changed: ${describeRejection(error)}`);
    return;
  }
  if (generatedEngineId) {
    io.print(`Set the fixed engine id ${generatedEngineId}; configure it on the trap receiver.`);
  }
  io.print(`Trap target ${host}:${port} added for user ${user}; restart imp-cdr-snmp to apply it.`);
}

async function removeTrapTarget(io: ConsoleIo, options: SnmpMenuOptions, settings: SnmpConfig): Promise<void> {
  const count = settings.standalone.trapTargets.length;
  if (count === 0) {
    io.print('There is no trap target to remove.');
    return;
  }
  const answer = await io.ask(`Number of the trap target to remove (1 to ${count}, empty to cancel): `);
  if (!answer) {
    return;
  }
  const position = Number(answer);
  if (!/^[0-9]+$/.test(answer) || position < 1 || position > count) {
    io.print(`Invalid trap target "${answer}"; enter a number from 1 to ${count}.`);
    return;
  }

  const removed = settings.standalone.trapTargets[position - 1]!;
  try {
    updateSnmpStandalone(options.configPath, options.previousConfigPath, (standalone) => {
      standalone.trapTargets.splice(position - 1, 1);
    });
  } catch (error) {
    io.print(`SNMP settings not changed: ${describeRejection(error)}`);
    return;
  }
  io.print(`Trap target ${removed.host}:${removed.port} removed; restart imp-cdr-snmp to apply it.`);
}
