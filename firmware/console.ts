/**
 * The technician console (`cdrctl console`) for tty1 and the serial console: a header with the node's
 * model, firmware, role, peer state and addresses, then a numbered menu. Ctrl-C prints a notice and
 * is otherwise ignored. A bad entry prints what was expected and shows the menu again. An unconfigured
 * node starts with a first-boot wizard (management address, then admin password).
 *
 * Interface addresses are written as systemd-networkd `.network` files under `networkRoot`
 * (`/etc/systemd/network` on the appliance). Before each change the previous files are copied to
 * `<stateDir>/previous-network/`. SNMP changes are written to cdr.yaml (`configPath`), whose previous
 * version is copied to `<stateDir>/previous-cdr.yaml`. "Restore the previous configuration" puts back
 * whichever of the two is saved. "Factory reset" runs factory-reset.ts, then offers a reboot and starts
 * the first-boot wizard when the technician declines it.
 */

import { execFile } from 'node:child_process';
import { randomBytes, scryptSync } from 'node:crypto';
import { cpSync, existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { createInterface, type Interface } from 'node:readline';
import { Writable } from 'node:stream';
import { promisify } from 'node:util';

import ipaddr from 'ipaddr.js';

import type { HardwareReport } from '../hw/check.js';
import { O550_PROFILE, type InterfaceRole } from '../hw/profile.js';
import { SOFTWARE_VERSION } from '../services/common/version.js';
import { ControlClient } from '../modules/protocol/control-client.js';
import { createLogger } from '../services/common/logger.js';
import type { CdrConfig } from '../services/common/config.js';
import { loadPeer } from '../services/repository/peer.js';
import { describeError, type ConsoleIo } from './console-io.js';
import { runPairingMenu } from './console-pairing.js';
import { runSnmpMenu } from './console-snmp.js';
import { applyBundle, readFirmwareState } from './apply.js';
import { loadTrustedKey } from './release-key.js';
import { factoryReset, listConsoleNetworkFiles, readDefaultConfig, RESET_STOPPED_UNITS, runCommand, type CommandRunner, type FactoryResetReport } from './factory-reset.js';
import { SystemdFirmwareSystem } from './system.js';

const execFileAsync = promisify(execFile);

export interface ConsoleOptions {
  /** Folder of the systemd-networkd files. */
  networkRoot: string;
  /** Console state: admin password hash, first-boot marker, previous network files. */
  stateDir: string;
  /** Firmware state folder, for the version in the header. */
  firmwareDir: string;
  controlSocketPath: string;
  /** Socket of this node's pairing daemon (imp-cdr-pairing). */
  pairingSocketPath: string;
  /** The cdr.yaml the services read; the SNMP option edits it. */
  configPath: string;
  /** Hardware check for the header; it accepts unsupported hardware so that the console always starts. */
  hardware: HardwareReport;
  /** Strict hardware check run before a firmware apply from the menu. */
  checkHardwareForApply: () => HardwareReport;
  /** The configuration in force; a factory reset removes the state paths it names. */
  config: Readonly<CdrConfig>;
  /** The default configuration a factory reset writes over `configPath`. */
  defaultConfigPath: string;
  /** `firmware.publicKey` and `firmware.readyTimeoutMs` from the configuration. */
  firmwarePublicKeyPath: string;
  firmwareReadyTimeoutMs: number;
  input: NodeJS.ReadableStream;
  output: NodeJS.WritableStream;
  /** Runs `systemctl` for the factory reset and the power actions. @defaultValue {@link runCommand} */
  runCommand?: CommandRunner;
}

/**
 * End of a console session: `left` after choice 0 or the end of input at the menu, and
 * `first-boot-incomplete` when the input ended before the first-boot wizard finished, which then saved
 * nothing.
 */
export type ConsoleOutcome = 'left' | 'first-boot-incomplete';

/** An interface address typed and checked, not yet written. */
interface InterfaceSetting {
  role: InterfaceRole;
  /** Address with prefix length, normalised, such as 192.0.2.10/24. */
  address: string;
  /** Default gateway, '' for none. */
  gateway: string;
}

const ROLES: readonly InterfaceRole[] = ['management', 'replication', 'service'];
const MIN_PASSWORD_LENGTH = 12;
const MAX_PASSWORD_LENGTH = 128;

const MENU = [
  ' 1) Interface addresses',
  ' 2) Admin password',
  ' 3) Pairing: open a pairing window or pair with a peer',
  ' 4) SNMP settings (v3 user, trap targets)',
  ' 5) Apply firmware',
  ' 6) Service status and recent log',
  ' 7) Ping the peer',
  ' 8) Restore the previous configuration',
  ' 9) Factory reset',
  '10) Reboot',
  '11) Power off',
  ' 0) Leave the console',
];

/** Runs the console until the technician leaves it or the input ends. */
export async function runConsole(options: ConsoleOptions): Promise<ConsoleOutcome> {
  const muted = { on: false };
  const output = new Writable({
    write(chunk, encoding, callback) {
      if (!muted.on) {
        options.output.write(chunk, encoding);
      }
      callback();
    },
  });
  // On a terminal readline echoes and edits the line. Piped input is neither echoed (passwords would
  // show) nor given cursor codes.
  const rl = createInterface({ input: options.input, output, terminal: Boolean((options.input as { isTTY?: boolean }).isTTY) });
  const session = new ConsoleSession(rl, options, muted);
  rl.on('SIGINT', () => session.onInterrupt());
  const outcome = await session.run();
  rl.close();
  return outcome;
}

class ConsoleSession {
  readonly #rl: Interface;
  readonly #options: ConsoleOptions;
  readonly #muted: { on: boolean };
  #closed = false;
  /** Set when a menu choice ends the session: a reboot after a factory reset, or end of input in its wizard. */
  #endedBy: ConsoleOutcome | undefined;
  #pendingAnswer: ((answer: string | undefined) => void) | undefined;
  /** Lines typed while no question was open (while the header was being read), answered in order. */
  readonly #typedAhead: string[] = [];
  readonly #io: ConsoleIo = { ask: (question, hidden) => this.#ask(question, hidden), print: (text) => this.#print(text) };

  constructor(rl: Interface, options: ConsoleOptions, muted: { on: boolean }) {
    this.#rl = rl;
    this.#options = options;
    this.#muted = muted;
    rl.on('line', (line) => {
      if (this.#pendingAnswer) {
        this.#pendingAnswer(line);
      } else {
        this.#typedAhead.push(line);
      }
    });
    rl.on('close', () => {
      this.#closed = true;
      this.#pendingAnswer?.(undefined);
    });
  }

  #print(text: string): void {
    this.#options.output.write(`${text}\n`);
  }

  /** Ctrl-C abandons the current question but never ends the console. */
  onInterrupt(): void {
    this.#muted.on = false;
    this.#print('\nCtrl-C does not leave the console; choose 0 to leave.');
    this.#typedAhead.length = 0;
    this.#pendingAnswer?.('');
  }

  /** Whether the input has closed and every line read before that has been consumed by a question. */
  get #inputEnded(): boolean {
    return this.#closed && this.#typedAhead.length === 0;
  }

  #ask(question: string, hidden = false): Promise<string | undefined> {
    if (this.#inputEnded) {
      return Promise.resolve(undefined);
    }
    return new Promise((resolveAnswer) => {
      this.#pendingAnswer = (answer) => {
        this.#pendingAnswer = undefined;
        this.#muted.on = false;
        if (hidden) {
          this.#options.output.write('\n');
        }
        resolveAnswer(answer === undefined ? undefined : answer.trim());
      };
      this.#rl.setPrompt(question);
      this.#rl.prompt();
      this.#muted.on = hidden;
      const typed = this.#typedAhead.shift();
      if (typed !== undefined) {
        this.#pendingAnswer(typed);
      }
    });
  }

  async run(): Promise<ConsoleOutcome> {
    if (!existsSync(join(this.#options.stateDir, 'configured')) && !(await this.#firstBoot())) {
      return 'first-boot-incomplete';
    }
    while (!this.#inputEnded) {
      await this.#showHeader();
      this.#print(MENU.join('\n'));
      const choice = await this.#ask('Choice: ');
      if (choice === '0') {
        return 'left';
      }
      if (choice === undefined) {
        break;
      }
      await this.#dispatch(choice);
      if (this.#endedBy) {
        return this.#endedBy;
      }
    }
    this.#print('Input ended; leaving the console.');
    return 'left';
  }

  /**
   * Asks for the management address and the admin password, then writes both and the `configured`
   * marker. Returns false when the input ended first, and then writes nothing.
   */
  async #firstBoot(): Promise<boolean> {
    this.#print('First boot: this node is not configured yet.');
    this.#print('Step 1 of 2: management interface address.');
    let management: InterfaceSetting | undefined;
    while (!this.#inputEnded && !(management = await this.#askInterface('management'))) {
      // An entry cut off by the end of input is not invalid, so it gets no "try again".
      if (!this.#inputEnded) {
        this.#print('The management address is required; try again.');
      }
    }
    if (management) {
      this.#print('Step 2 of 2: admin password.');
    }
    let password: string | undefined;
    while (management && !this.#inputEnded && !(password = await this.#askPassword())) {
      if (!this.#inputEnded) {
        this.#print('The admin password is required; try again.');
      }
    }
    if (!management || !password) {
      this.#print('Input ended before the first-boot wizard finished; nothing was saved.');
      return false;
    }

    this.#writeInterface(management);
    this.#writePassword(password);
    mkdirSync(this.#options.stateDir, { recursive: true, mode: 0o750 });
    writeFileSync(join(this.#options.stateDir, 'configured'), `${new Date().toISOString()}\n`);
    this.#print('First boot finished.');
    return true;
  }

  async #dispatch(choice: string): Promise<void> {
    switch (choice) {
      case '':
        return;
      case '1': {
        const role = await this.#ask('Role (management, replication, service): ');
        if (role === undefined || role === '') {
          return;
        }
        if (!ROLES.includes(role as InterfaceRole)) {
          this.#print(`Invalid role "${role}"; expected management, replication or service.`);
          return;
        }
        await this.#setInterface(role as InterfaceRole);
        return;
      }
      case '2':
        await this.#setPassword();
        return;
      case '3':
        await runPairingMenu(this.#io, { controlSocketPath: this.#options.controlSocketPath, pairingSocketPath: this.#options.pairingSocketPath });
        return;
      case '4':
        await runSnmpMenu(this.#io, { configPath: this.#options.configPath, previousConfigPath: this.#previousConfigPath });
        return;
      case '5':
        await this.#applyFirmware();
        return;
      case '6':
        await this.#serviceStatus();
        return;
      case '7':
        await this.#pingPeer();
        return;
      case '8':
        this.#restore();
        return;
      case '9':
        await this.#factoryReset();
        return;
      case '10':
      case '11':
        await this.#power(choice === '10' ? 'reboot' : 'poweroff');
        return;
      default:
        this.#print(`Invalid choice "${choice}"; enter a number from 0 to 11.`);
    }
  }

  async #showHeader(): Promise<void> {
    const firmware = readFirmwareState(this.#options.firmwareDir).current?.version ?? SOFTWARE_VERSION;
    const node = await this.#nodeState();
    const addresses = Object.entries(networkInterfaces())
      .filter(([name]) => name !== 'lo')
      .map(([name, entries]) => `${name} ${(entries ?? []).map((entry) => `${entry.address}/${entry.netmask.includes(':') ? ipaddr.parse(entry.netmask).prefixLengthFromSubnetMask() : ipaddr.IPv4.parse(entry.netmask).prefixLengthFromSubnetMask()}`).join(' ')}`);
    this.#print('');
    this.#print(`IMP-CDR ${this.#options.hardware.model} | firmware ${firmware} | ${node}`);
    this.#print(`addresses: ${addresses.join('; ') || 'none'}`);
    this.#print('-'.repeat(60));
  }

  async #nodeState(): Promise<string> {
    try {
      const client = await ControlClient.connect(this.#options.controlSocketPath);
      try {
        const { status } = await client.call({ status: {} });
        const { pairStatus } = await client.call({ pairStatus: {} });
        const peer = pairStatus?.peer?.nodeId ? `peer ${pairStatus.peer.nodeId} ${pairStatus.replicationState}` : 'no peer';
        return `node ${status?.nodeId} (${status?.role}) | ${peer}`;
      } finally {
        client.close();
      }
    } catch {
      return 'repository not running | peer unknown';
    }
  }

  /** Asks for an address and gateway of `role` and writes its networkd file. */
  async #setInterface(role: InterfaceRole): Promise<void> {
    const setting = await this.#askInterface(role);
    if (setting) {
      this.#writeInterface(setting);
    }
  }

  /** Asks for an address and gateway of `role`; returns them once valid, or undefined. */
  async #askInterface(role: InterfaceRole): Promise<InterfaceSetting | undefined> {
    const interfaceName = O550_PROFILE.interfaces[role];
    const address = await this.#ask(`${role} (${interfaceName}) address, CIDR such as 192.0.2.10/24: `);
    if (!address) {
      return undefined;
    }
    const parsed = parseCidr(address);
    if (typeof parsed === 'string') {
      this.#print(parsed);
      return undefined;
    }
    const gateway = role === 'management' ? await this.#ask('Gateway (empty for none): ') : '';
    if (gateway === undefined) {
      return undefined;
    }
    if (gateway !== '' && (!ipaddr.isValid(gateway) || ipaddr.parse(gateway).kind() !== parsed.kind)) {
      this.#print(`Invalid gateway "${gateway}"; expected an ${parsed.kind} address.`);
      return undefined;
    }
    return { role, address: parsed.text, gateway };
  }

  /** Writes the networkd file of one interface, after saving the current files for option 8. */
  #writeInterface(setting: InterfaceSetting): void {
    this.#backupNetwork();
    mkdirSync(this.#options.networkRoot, { recursive: true });
    const path = join(this.#options.networkRoot, `10-imp-cdr-${setting.role}.network`);
    const lines = ['# Written by the IMP-CDR console.', '[Match]', `Name=${O550_PROFILE.interfaces[setting.role]}`, '', '[Network]', `Address=${setting.address}`];
    if (setting.gateway) {
      lines.push(`Gateway=${setting.gateway}`);
    }
    writeFileSync(`${path}.tmp`, `${lines.join('\n')}\n`);
    renameSync(`${path}.tmp`, path);
    this.#print(`Wrote ${path}; networkd applies it at the next restart of systemd-networkd.`);
  }

  async #setPassword(): Promise<void> {
    const password = await this.#askPassword();
    if (password) {
      this.#writePassword(password);
    }
  }

  /** Asks for the admin password twice; returns it once valid and repeated, or undefined. */
  async #askPassword(): Promise<string | undefined> {
    const first = await this.#ask(`New admin password (${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH} characters): `, true);
    if (!first) {
      return undefined;
    }
    if (first.length < MIN_PASSWORD_LENGTH || first.length > MAX_PASSWORD_LENGTH) {
      this.#print(`Invalid password: it has ${first.length} characters; expected ${MIN_PASSWORD_LENGTH} to ${MAX_PASSWORD_LENGTH}.`);
      return undefined;
    }
    const second = await this.#ask('Repeat the password: ', true);
    if (second === undefined) {
      return undefined;
    }
    if (second !== first) {
      this.#print('The passwords differ; the admin password was not changed.');
      return undefined;
    }
    return first;
  }

  /** Stores the scrypt hash of `password`; the password itself is never written. */
  #writePassword(password: string): void {
    const salt = randomBytes(16);
    const hash = scryptSync(password, salt, 32, { N: 16384, r: 8, p: 1 });
    mkdirSync(this.#options.stateDir, { recursive: true, mode: 0o750 });
    const path = join(this.#options.stateDir, 'admin-password');
    writeFileSync(`${path}.tmp`, `scrypt$16384$8$1$${salt.toString('base64')}$${hash.toString('base64')}\n`, { mode: 0o600 });
    renameSync(`${path}.tmp`, path);
    this.#print('Admin password changed.');
  }

  /** Applies a bundle as `cdrctl firmware apply` does, without the downgrade and hardware overrides. */
  async #applyFirmware(): Promise<void> {
    const bundlePath = await this.#ask('Firmware bundle path (empty to cancel): ');
    if (!bundlePath) {
      return;
    }
    try {
      const outcome = await applyBundle({
        bundlePath,
        publicKey: loadTrustedKey(this.#options.firmwarePublicKeyPath),
        stateDir: this.#options.firmwareDir,
        hardware: this.#options.checkHardwareForApply(),
        allowDowngrade: false,
        readyTimeoutMs: this.#options.firmwareReadyTimeoutMs,
        system: new SystemdFirmwareSystem(this.#options.controlSocketPath),
        log: createLogger('console', 'silent'),
      });
      this.#print(
        outcome.result === 'committed'
          ? `Firmware ${outcome.version} applied and committed.`
          : `Firmware ${outcome.version} failed and was rolled back to ${outcome.restoredVersion}: ${outcome.reason}`,
      );
    } catch (error) {
      const code = (error as { code?: string }).code;
      this.#print(`Firmware not applied: ${(error as Error).message}${code ? ` (${code})` : ''}`);
    }
  }

  async #serviceStatus(): Promise<void> {
    this.#print(`repository: ${await this.#nodeState()}`);
    try {
      const { stdout } = await execFileAsync('journalctl', ['--no-pager', '-n', '20', '-u', 'imp-cdr-*'], { timeout: 10_000 });
      this.#print(stdout.trimEnd());
    } catch (error) {
      this.#print(`Recent log unavailable: journalctl failed (${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}).`);
    }
  }

  async #pingPeer(): Promise<void> {
    let host: string | undefined;
    try {
      const client = await ControlClient.connect(this.#options.controlSocketPath);
      try {
        host = (await client.call({ pairStatus: {} })).pairStatus?.peer?.host ?? undefined;
      } finally {
        client.close();
      }
    } catch (error) {
      this.#print(`Cannot read the peer: ${(error as Error).message}`);
      return;
    }
    if (!host) {
      this.#print('This node has no peer; pair it first (option 3).');
      return;
    }
    try {
      const { stdout } = await execFileAsync('ping', ['-c', '3', '-W', '2', host], { timeout: 15_000 });
      this.#print(stdout.trimEnd());
    } catch (error) {
      this.#print(`Ping to ${host} failed: ${(error as { stdout?: string }).stdout?.trim().split('\n').at(-1) ?? (error as Error).message}`);
    }
  }

  #backupNetwork(): void {
    const backup = join(this.#options.stateDir, 'previous-network');
    mkdirSync(this.#options.stateDir, { recursive: true, mode: 0o750 });
    rmSync(backup, { recursive: true, force: true });
    mkdirSync(backup);
    for (const name of listConsoleNetworkFiles(this.#options.networkRoot)) {
      cpSync(join(this.#options.networkRoot, name), join(backup, name));
    }
  }

  get #previousConfigPath(): string {
    return join(this.#options.stateDir, 'previous-cdr.yaml');
  }

  #restore(): void {
    const networkSaved = existsSync(join(this.#options.stateDir, 'previous-network'));
    const configSaved = existsSync(this.#previousConfigPath);
    if (!networkSaved && !configSaved) {
      this.#print('No previous configuration is saved; nothing was changed.');
      return;
    }
    if (networkSaved) {
      this.#restoreNetwork();
    }
    if (configSaved) {
      // Copied rather than renamed, because the state folder and /etc may be on different file systems.
      cpSync(this.#previousConfigPath, `${this.#options.configPath}.tmp`);
      renameSync(`${this.#options.configPath}.tmp`, this.#options.configPath);
      rmSync(this.#previousConfigPath);
      this.#print(`Restored the previous ${this.#options.configPath}; restart imp-cdr-snmp to apply it.`);
    }
  }

  #restoreNetwork(): void {
    const backup = join(this.#options.stateDir, 'previous-network');
    for (const name of listConsoleNetworkFiles(this.#options.networkRoot)) {
      rmSync(join(this.#options.networkRoot, name));
    }
    const restored = listConsoleNetworkFiles(backup);
    for (const name of restored) {
      cpSync(join(backup, name), join(this.#options.networkRoot, name));
    }
    rmSync(backup, { recursive: true, force: true });
    this.#print(`Restored the previous configuration (${restored.length} interface files).`);
  }

  async #factoryReset(): Promise<void> {
    const state = this.#options.config.paths.state;
    this.#print(
      `Factory reset stops the IMP-CDR services and removes this node's state under ${state}: the index, node id, TLS material, ` +
        'peer record, pairing host key, interface addresses and admin password. It writes the default configuration over ' +
        `${this.#options.configPath} and keeps the firmware history.`,
    );
    const peerNodeId = pairedNodeId(state);
    if (peerNodeId) {
      this.#print(`This node is paired with ${peerNodeId}, which keeps its record of this node: unpair first (option 3), or run "cdrctl unpair --local-only" on ${peerNodeId} afterwards.`);
    }
    const answer = await this.#ask('Type RESET to confirm: ');
    if (answer !== 'RESET') {
      this.#print('Factory reset cancelled; nothing was changed.');
      return;
    }

    let report: FactoryResetReport;
    try {
      readDefaultConfig(this.#options.defaultConfigPath, this.#options.configPath);
      this.#print(`Stopping the services: systemctl stop ${RESET_STOPPED_UNITS.join(' ')}`);
      report = await factoryReset({
        config: this.#options.config,
        configPath: this.#options.configPath,
        defaultConfigPath: this.#options.defaultConfigPath,
        networkRoot: this.#options.networkRoot,
        controlSocketPath: this.#options.controlSocketPath,
        pairingSocketPath: this.#options.pairingSocketPath,
        run: this.#runCommand,
      });
    } catch (error) {
      this.#print(`Factory reset failed: ${describeError(error)}`);
      return;
    }
    for (const path of report.removed) {
      this.#print(`Removed ${path}`);
    }
    for (const path of report.leftOutside) {
      this.#print(`Left in place, because it is not inside ${state}: ${path}`);
    }
    this.#print(`Wrote the default configuration ${this.#options.defaultConfigPath} to ${this.#options.configPath}.`);
    this.#print('Factory reset done.');

    const reboot = await this.#ask('Reboot now, so that the services start with the new state? Type yes to confirm: ');
    if (reboot === 'yes' && (await this.#runPower('reboot'))) {
      this.#endedBy = 'left';
      return;
    }
    if (reboot !== undefined) {
      this.#print('The services stay stopped until the node reboots (option 10).');
    }
    if (!(await this.#firstBoot())) {
      this.#endedBy = 'first-boot-incomplete';
    }
  }

  get #runCommand(): CommandRunner {
    return this.#options.runCommand ?? runCommand;
  }

  async #power(action: 'reboot' | 'poweroff'): Promise<void> {
    const answer = await this.#ask(`${action === 'reboot' ? 'Reboot' : 'Power off'} this node? Type yes to confirm: `);
    if (answer !== 'yes') {
      this.#print(`${action === 'reboot' ? 'Reboot' : 'Power off'} cancelled.`);
      return;
    }
    await this.#runPower(action);
  }

  /** Runs `systemctl reboot` or `systemctl poweroff`; returns whether systemctl accepted it. */
  async #runPower(action: 'reboot' | 'poweroff'): Promise<boolean> {
    try {
      await this.#runCommand('systemctl', [action]);
      this.#print(`${action} requested.`);
      return true;
    } catch (error) {
      this.#print(`${action} failed: ${(error as Error).message}`);
      return false;
    }
  }
}

/** Returns the node id in `<stateDir>/peer.json`, or undefined when the node is not paired or the record is unreadable. */
function pairedNodeId(stateDir: string): string | undefined {
  try {
    return loadPeer(stateDir)?.nodeId || undefined;
  } catch {
    return undefined;
  }
}
/** Checks an interface address in CIDR form; returns the address or the message for the technician. */
export function parseCidr(text: string): { text: string; kind: 'ipv4' | 'ipv6' } | string {
  let parsed: [ipaddr.IPv4 | ipaddr.IPv6, number];
  try {
    parsed = ipaddr.parseCIDR(text);
  } catch {
    return `Invalid address "${text}"; expected an address with a prefix length, such as 192.0.2.10/24 or 2001:db8::10/64.`;
  }
  const [address, prefix] = parsed;
  const range = address.range();
  if (range !== 'unicast' && range !== 'private' && range !== 'uniqueLocal' && range !== 'reserved') {
    return `Invalid address "${text}": a ${range} address cannot be assigned to an interface.`;
  }
  if (address.kind() === 'ipv4' && prefix > 30) {
    return `Invalid prefix length /${prefix} for an interface address; expected /8 to /30.`;
  }
  return { text: `${address.toString()}/${prefix}`, kind: address.kind() };
}

