/**
 * The technician console driven in tmux as a technician would: keys go in with `send-keys`, the screen
 * is read with `capture-pane`. Each test runs its own tmux server on a socket in its own folder.
 */

import { execFile, spawn } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import test, { type ExecutionContext } from 'ava';
import { parse as parseYaml } from 'yaml';

import { SystemdFirmwareSystem } from '../firmware/system.js';

import { CDRCTL_MAIN, removeNode, restartNode } from './helpers/node.js';
import { cdrctlWithInput, startPairingNode, type PairingNode } from './helpers/pairing.js';
import { O550_FIXTURE, writeHardwareFixture } from './helpers/hw-fixture.js';

const execFileAsync = promisify(execFile);

interface ConsolePane {
  dir: string;
  networkRoot: string;
  stateDir: string;
  /** The file a factory reset writes over the configuration. */
  defaultConfigPath: string;
  /** The fake systemctl the console runs in place of the real one. */
  systemctl: FakeSystemctl;
  keys(...keys: string[]): Promise<void>;
  line(text: string): Promise<void>;
  /** Waits until the screen and its history match `pattern`, counting only output after `since`. */
  waitFor(pattern: RegExp, since?: number): Promise<string>;
  screen(): Promise<string>;
  alive(): Promise<boolean>;
  /** Exit status of the console once it has ended. */
  exitStatus(): Promise<number>;
}

/** Default configuration of the console tests: state and run folders beside the configuration file. */
const TEST_DEFAULT_CONFIG = '# IMP-CDR default configuration of the console tests.\npaths:\n  state: .\n  run: run\n';

interface FakeSystemctl {
  /** Folder to put first on PATH. */
  binDir: string;
  /** One line per call: the arguments, then whether `<state>/index` existed at that moment. */
  logPath: string;
  /** PIDs that `systemctl stop` ends, one per line, standing in for the units. */
  pidsPath: string;
  /** While this file exists, every call fails with exit status 1. */
  failPath: string;
  /** While this file exists, `stop` succeeds without ending any process. */
  ignoreStopPath: string;
  /** The logged calls so far. */
  calls(): string[];
}

/**
 * Writes a fake systemctl under `dir`. The console runs `systemctl` for the factory reset and the power
 * actions, and systemd does not run as PID 1 on the test machine, so the console tests put this one first
 * on PATH. It records every call. For `stop` it sends SIGTERM to the processes in `pidsPath` and waits
 * up to 20 s for each to exit, as systemd stops the units.
 */
function writeFakeSystemctl(dir: string, stateDir: string): FakeSystemctl {
  const binDir = join(dir, 'bin');
  const fake: FakeSystemctl = {
    binDir,
    logPath: join(dir, 'systemctl.log'),
    pidsPath: join(dir, 'service-pids'),
    failPath: join(dir, 'systemctl-fails'),
    ignoreStopPath: join(dir, 'systemctl-ignores-stop'),
    calls: () => (existsSync(fake.logPath) ? readFileSync(fake.logPath, 'utf8').trimEnd().split('\n') : []),
  };
  mkdirSync(binDir);
  writeFileSync(
    join(binDir, 'systemctl'),
    [
      '#!/bin/sh',
      `if [ -d '${join(stateDir, 'index')}' ]; then index=present; else index=absent; fi`,
      `echo "$* | index $index" >> '${fake.logPath}'`,
      `if [ -e '${fake.failPath}' ]; then echo 'Failed to stop imp-cdr.target: Access denied' >&2; exit 1; fi`,
      `if [ "$1" = stop ] && [ ! -e '${fake.ignoreStopPath}' ] && [ -s '${fake.pidsPath}' ]; then`,
      `  for pid in $(cat '${fake.pidsPath}'); do kill -TERM "$pid" 2>/dev/null; done`,
      `  for pid in $(cat '${fake.pidsPath}'); do`,
      '    n=0; while kill -0 "$pid" 2>/dev/null && [ $n -lt 200 ]; do sleep 0.1; n=$((n+1)); done',
      '  done',
      'fi',
      'exit 0',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  return fake;
}

/**
 * Starts the console in a tmux pane. `configPath` names the cdr.yaml of a running test node, and that
 * file's `paths.state` must be its own folder. Without it the console gets a configuration of its own.
 */
async function startConsole(
  t: { teardown(fn: () => Promise<void> | void): void },
  options: { configured: boolean; configPath?: string },
): Promise<ConsolePane> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-console-'));
  // The tmux server socket lives in the test folder, so the teardown removes it with the folder.
  const socket = join(dir, 'tmux.sock');
  const networkRoot = join(dir, 'network');
  const configPath = options.configPath ?? join(dir, 'cdr.yaml');
  const stateDir = join(dirname(configPath), 'console');
  const hwRoot = writeHardwareFixture(O550_FIXTURE);
  const defaultConfigPath = join(dir, 'default-cdr.yaml');
  writeFileSync(defaultConfigPath, TEST_DEFAULT_CONFIG);
  const systemctl = writeFakeSystemctl(dir, dirname(configPath));
  if (!options.configPath) {
    const { publicKey } = generateKeyPairSync('ed25519');
    writeFileSync(join(dir, 'release-key.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
    writeFileSync(configPath, 'paths:\n  state: .\n  run: run\nfirmware:\n  publicKey: release-key.pem\n');
  }
  if (options.configured) {
    mkdirSync(stateDir);
    writeFileSync(join(stateDir, 'configured'), 'test\n');
  }

  const tmux = (...args: string[]) => execFileAsync('tmux', ['-S', socket, ...args]);
  // The shell that tmux runs the command with writes the exit status to a file, because tmux 3.3a
  // sometimes shows no #{pane_dead_status} for a dead pane.
  const exitStatusPath = join(dir, 'exit-status');
  const command =
    `env PATH=${systemctl.binDir}:${process.env['PATH']} ${process.execPath} ${CDRCTL_MAIN} --config ${configPath} ` +
    `console --network-root ${networkRoot} --root ${hwRoot} --default-config ${defaultConfigPath}; echo $? > ${exitStatusPath}`;
  await tmux('new-session', '-d', '-s', 'console', '-x', '120', '-y', '50', command);
  await tmux('set-option', '-t', 'console', 'remain-on-exit', 'on');
  t.teardown(async () => {
    await tmux('kill-server').catch(() => undefined);
    rmSync(dir, { recursive: true, force: true });
    rmSync(hwRoot, { recursive: true, force: true });
  });

  // Trailing spaces and the blank rows below the cursor are dropped, so that offsets into the text stay
  // valid as the screen fills.
  const screen = async () =>
    (await tmux('capture-pane', '-p', '-J', '-S', '-', '-t', 'console')).stdout
      .split('\n')
      .map((line) => line.trimEnd())
      .join('\n')
      .trimEnd();
  return {
    dir,
    networkRoot,
    stateDir,
    defaultConfigPath,
    systemctl,
    async keys(...keys) {
      await tmux('send-keys', '-t', 'console', ...keys);
    },
    async line(text) {
      await tmux('send-keys', '-t', 'console', '-l', '--', text);
      await tmux('send-keys', '-t', 'console', 'Enter');
    },
    async waitFor(pattern, since = 0) {
      const deadline = Date.now() + 15_000;
      let text = '';
      while (Date.now() < deadline) {
        text = (await screen()).slice(since);
        if (pattern.test(text)) {
          return text;
        }
        await sleep(100);
      }
      throw new Error(`screen never matched ${pattern}:\n${text}`);
    },
    screen,
    async alive() {
      return (await tmux('display-message', '-p', '-t', 'console', '#{pane_dead}')).stdout.trim() === '0';
    },
    async exitStatus() {
      const deadline = Date.now() + 5000;
      while (!existsSync(exitStatusPath) && Date.now() < deadline) {
        await sleep(50);
      }
      return Number(readFileSync(exitStatusPath, 'utf8').trim());
    },
  };
}

/** Waits up to 15 s for the console in `pane` to end. */
async function waitForExit(pane: ConsolePane): Promise<void> {
  const deadline = Date.now() + 15_000;
  while ((await pane.alive()) && Date.now() < deadline) {
    await sleep(100);
  }
}

test.serial('first boot wizard checks input', async (t) => {
  const pane = await startConsole(t, { configured: false });
  await pane.waitFor(/First boot: this node is not configured yet\.\nStep 1 of 2: management interface address\.\nmanagement \(eno1\) address, CIDR such as 192\.0\.2\.10\/24:$/m);

  const badAddresses: Array<[string, RegExp]> = [
    ['999.1.1.1/24', /Invalid address "999\.1\.1\.1\/24"; expected an address with a prefix length/],
    ['192.0.2.10', /Invalid address "192\.0\.2\.10"; expected an address with a prefix length/],
    ['224.0.0.1/24', /Invalid address "224\.0\.0\.1\/24": a multicast address cannot be assigned to an interface\./],
    ['192.0.2.10/31', /Invalid prefix length \/31 for an interface address; expected \/8 to \/30\./],
  ];
  for (const [address, message] of badAddresses) {
    const before = (await pane.screen()).length;
    await pane.line(address);
    await pane.waitFor(message, before);
    await pane.waitFor(/The management address is required; try again\.\nmanagement \(eno1\) address/, before);
  }

  let before = (await pane.screen()).length;
  await pane.line('192.0.2.10/24');
  await pane.waitFor(/Gateway \(empty for none\):$/m, before);
  await pane.line('2001:db8::1');
  await pane.waitFor(/Invalid gateway "2001:db8::1"; expected an ipv4 address\./, before);
  t.false(existsSync(join(pane.networkRoot, '10-imp-cdr-management.network')), 'a rejected gateway writes nothing');

  before = (await pane.screen()).length;
  await pane.line('192.0.2.10/24');
  await pane.waitFor(/Gateway/, before);
  await pane.line('192.0.2.1');
  await pane.waitFor(/Step 2 of 2: admin password\.\nNew admin password \(12 to 128 characters\):$/m, before);

  // 11 characters: one below the minimum. The typed text never shows on the screen.
  before = (await pane.screen()).length;
  await pane.line('abcdefghijk');
  await pane.waitFor(/Invalid password: it has 11 characters; expected 12 to 128\./, before);
  t.false((await pane.screen()).includes('abcdefghijk'));

  before = (await pane.screen()).length;
  await pane.line('abcdefghijkl');
  await pane.waitFor(/Repeat the password:$/m, before);
  await pane.line('abcdefghijkX');
  await pane.waitFor(/The passwords differ; the admin password was not changed\./, before);

  before = (await pane.screen()).length;
  await pane.line('abcdefghijkl');
  await pane.waitFor(/Repeat the password/, before);
  await pane.line('abcdefghijkl');
  await pane.waitFor(/Admin password changed\.\nFirst boot finished\.\n\nIMP-CDR O550 \| firmware \S+ \| repository not running \| peer unknown/, before);
  await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);

  t.is(
    readFileSync(join(pane.networkRoot, '10-imp-cdr-management.network'), 'utf8'),
    '# Written by the IMP-CDR console.\n[Match]\nName=eno1\n\n[Network]\nAddress=192.0.2.10/24\nGateway=192.0.2.1\n',
  );
  const hash = readFileSync(join(pane.stateDir, 'admin-password'), 'utf8');
  t.regex(hash, /^scrypt\$16384\$8\$1\$[A-Za-z0-9+/=]{24}\$[A-Za-z0-9+/=]{44}\n$/);
  t.false(hash.includes('abcdefghijkl'));
  t.is(statSync(join(pane.stateDir, 'admin-password')).mode & 0o777, 0o600);
  t.true(existsSync(join(pane.stateDir, 'configured')));
});

test.serial('first boot input ends early', async (t) => {
  const pane = await startConsole(t, { configured: false });
  await pane.waitFor(/management \(eno1\) address, CIDR such as 192\.0\.2\.10\/24:$/m);
  await pane.line('192.0.2.10/24');
  await pane.waitFor(/Gateway \(empty for none\):$/m);
  await pane.line('192.0.2.1');
  await pane.waitFor(/New admin password \(12 to 128 characters\):$/m);
  await pane.line('abcdefghijkl');
  await pane.waitFor(/Repeat the password:$/m);

  // Ctrl-D on an empty line ends the terminal input, as a closed serial line does.
  await pane.keys('C-d');
  await pane.waitFor(/Input ended before the first-boot wizard finished; nothing was saved\.$/m);
  await waitForExit(pane);
  t.false(await pane.alive());
  t.is(await pane.exitStatus(), 1);
  t.false(existsSync(pane.networkRoot), 'no interface file');
  t.false(existsSync(join(pane.stateDir, 'admin-password')));
  t.false(existsSync(join(pane.stateDir, 'configured')));
  t.false(existsSync(join(pane.stateDir, 'previous-network')));
});

/** A console fed from a pipe: an unconfigured state folder, an interface folder and an O550 fixture. */
interface PipedConsole {
  dir: string;
  networkRoot: string;
  run(input: string): Promise<{ code: number | null; stdout: string }>;
}

function pipedConsole(t: ExecutionContext): PipedConsole {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-console-'));
  const hwRoot = writeHardwareFixture(O550_FIXTURE);
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
    rmSync(hwRoot, { recursive: true, force: true });
  });
  const configPath = join(dir, 'cdr.yaml');
  writeFileSync(configPath, 'paths:\n  state: .\n  run: run\n');
  const networkRoot = join(dir, 'network');
  const run = (input: string) =>
    new Promise<{ code: number | null; stdout: string }>((resolveRun) => {
      const child = spawn(process.execPath, [CDRCTL_MAIN, '--config', configPath, 'console', '--network-root', networkRoot, '--root', hwRoot], { stdio: ['pipe', 'pipe', 'inherit'] });
      let stdout = '';
      child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
      child.stdin.end(input);
      child.once('exit', (code) => resolveRun({ code, stdout }));
    });
  return { dir, networkRoot, run };
}

test.serial('first boot piped input ends', async (t) => {
  const piped = pipedConsole(t);

  // Each case ends the input at another step; none of them may leave a file behind.
  const inputs = ['', '192.0.2.10/24\n', '192.0.2.10/24\n192.0.2.1\n', '192.0.2.10/24\n192.0.2.1\nabcdefghijkl\n', '192.0.2.10/24'];
  for (const input of inputs) {
    const result = await piped.run(input);
    const label = JSON.stringify(input);
    t.is(result.code, 1, label);
    t.true(result.stdout.trimEnd().endsWith('Input ended before the first-boot wizard finished; nothing was saved.'), `${label}: ${result.stdout}`);
    t.false(result.stdout.includes('First boot finished.'), label);
    // The end of input is not an invalid entry, so neither "try again" nor "passwords differ" appears.
    t.false(result.stdout.includes('try again'), `${label}: ${result.stdout}`);
    t.false(result.stdout.includes('The passwords differ'), `${label}: ${result.stdout}`);
    t.false(existsSync(piped.networkRoot), `${label}: no interface file`);
    t.false(existsSync(join(piped.dir, 'console')), `${label}: no console state`);
  }
});

test.serial('piped input reaches the menu', async (t) => {
  const piped = pipedConsole(t);

  // Lines that arrive in one burst, as when pasted, are still read in order after the input ends.
  const result = await piped.run('192.0.2.10/24\n192.0.2.1\nabcdefghijkl\nabcdefghijkl\n42\n0\n');
  t.is(result.code, 0, result.stdout);
  t.regex(result.stdout, /First boot finished\./);
  t.regex(result.stdout, /Invalid choice "42"; enter a number from 0 to 11\./);
  t.false(result.stdout.includes('abcdefghijkl'), 'piped input, the password included, is not echoed');
  t.false(result.stdout.includes('\u001b['), 'no cursor codes on piped output');
  t.true(existsSync(join(piped.dir, 'console', 'configured')));
  t.true(existsSync(join(piped.networkRoot, '10-imp-cdr-management.network')));
  t.false(result.stdout.includes('Input ended'), 'choice 0 leaves without an input-ended notice');

  // Input that ends inside a menu option leaves the console with a notice.
  const cut = await piped.run('1\nservice\n');
  t.is(cut.code, 0, cut.stdout);
  t.regex(cut.stdout, /Role \(management, replication, service\):/);
  t.true(cut.stdout.trimEnd().endsWith('Input ended; leaving the console.'), cut.stdout);
});

test.serial('Ctrl-C and bad entries', async (t) => {
  const pane = await startConsole(t, { configured: true });
  await pane.waitFor(/Choice:$/m);

  let before = (await pane.screen()).length;
  await pane.keys('C-c');
  await pane.waitFor(/Ctrl-C does not leave the console; choose 0 to leave\./, before);
  await pane.waitFor(/Choice:$/m, before);
  t.true(await pane.alive());

  for (const entry of ['42', 'abc', '-1', '12']) {
    before = (await pane.screen()).length;
    await pane.line(entry);
    await pane.waitFor(new RegExp(`Invalid choice "${entry}"; enter a number from 0 to 11\\.`), before);
    await pane.waitFor(/ 1\) Interface addresses[\s\S]*Choice:$/m, before);
  }

  // Ctrl-C in the middle of a question returns to the menu without writing anything.
  before = (await pane.screen()).length;
  await pane.line('1');
  await pane.waitFor(/Role \(management, replication, service\):$/m, before);
  await pane.line('service');
  await pane.waitFor(/service \(eno3\) address/, before);
  await pane.keys('C-c');
  await pane.waitFor(/Ctrl-C does not leave the console[\s\S]*Choice:$/m, before);
  t.false(existsSync(pane.networkRoot));

  before = (await pane.screen()).length;
  await pane.line('1');
  await pane.waitFor(/Role/, before);
  await pane.line('storage');
  await pane.waitFor(/Invalid role "storage"; expected management, replication or service\./, before);

  before = (await pane.screen()).length;
  await pane.line('10');
  await pane.waitFor(/Reboot this node\? Type yes to confirm:$/m, before);
  await pane.line('no');
  await pane.waitFor(/Reboot cancelled\./, before);

  before = (await pane.screen()).length;
  await pane.line('7');
  await pane.waitFor(/Cannot read the peer: cannot connect to the control socket .*control\.sock \(ENOENT\): is the repository running\?/, before);

  t.true(await pane.alive());
  // Sent without waiting for the menu: a line typed ahead is kept and answers the next question.
  await pane.line('0');
  await waitForExit(pane);
  t.false(await pane.alive());
  t.is(await pane.exitStatus(), 0);
});

test.serial('restore and factory reset', async (t) => {
  const pane = await startConsole(t, { configured: true });
  await pane.waitFor(/Choice:$/m);

  const setAddress = async (role: string, address: string) => {
    const before = (await pane.screen()).length;
    await pane.line('1');
    await pane.waitFor(/Role/, before);
    await pane.line(role);
    await pane.waitFor(/address, CIDR/, before);
    await pane.line(address);
    if (role === 'management') {
      await pane.waitFor(/Gateway/, before);
      await pane.line('');
    }
    await pane.waitFor(new RegExp(`Wrote .*10-imp-cdr-${role}\\.network`), before);
  };

  await setAddress('management', '198.51.100.5/24');
  await setAddress('service', '2001:db8:1::5/64');
  t.deepEqual(readdirSync(pane.networkRoot).sort(), ['10-imp-cdr-management.network', '10-imp-cdr-service.network']);
  t.regex(readFileSync(join(pane.networkRoot, '10-imp-cdr-service.network'), 'utf8'), /\nName=eno3\n[\s\S]*\nAddress=2001:db8:1::5\/64\n$/);

  let before = (await pane.screen()).length;
  await pane.line('8');
  await pane.waitFor(/Restored the previous configuration \(1 interface files\)\./, before);
  t.deepEqual(readdirSync(pane.networkRoot), ['10-imp-cdr-management.network']);

  before = (await pane.screen()).length;
  await pane.line('8');
  await pane.waitFor(/No previous configuration is saved; nothing was changed\./, before);

  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET to confirm:$/m, before);
  await pane.line('reset');
  await pane.waitFor(/Factory reset cancelled; nothing was changed\./, before);
  t.deepEqual(readdirSync(pane.networkRoot), ['10-imp-cdr-management.network']);
  t.true(existsSync(join(pane.stateDir, 'configured')));

  // A failing systemctl stop ends the reset before anything is removed.
  writeFileSync(pane.systemctl.failPath, '');
  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  await pane.waitFor(
    /Factory reset failed: stopping the services failed, so nothing was removed: systemctl stop imp-cdr\.target imp-cdr-repository\.service imp-cdr-snmp\.service imp-cdr-pairing\.service failed: Failed to stop imp-cdr\.target: Access denied \(ERR_RESET_STOP_FAILED\)/,
    before,
  );
  t.deepEqual(readdirSync(pane.networkRoot), ['10-imp-cdr-management.network']);
  t.true(existsSync(join(pane.stateDir, 'configured')));
  rmSync(pane.systemctl.failPath);

  // A missing default configuration ends it before systemctl runs.
  const defaultConfig = readFileSync(pane.defaultConfigPath, 'utf8');
  rmSync(pane.defaultConfigPath);
  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  await pane.waitFor(/Factory reset failed: cannot read the default configuration .*default-cdr\.yaml: ENOENT \(ERR_RESET_DEFAULT_CONFIG\)/, before);
  t.is(pane.systemctl.calls().length, 1, 'only the failed stop above ran');
  writeFileSync(pane.defaultConfigPath, defaultConfig);

  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  await pane.waitFor(/Factory reset done\.\nReboot now, so that the services start with the new state\? Type yes to confirm:$/m, before);
  await pane.line('no');
  await pane.waitFor(/The services stay stopped until the node reboots \(option 10\)\.\nFirst boot: this node is not configured yet\./, before);
  t.deepEqual(readdirSync(pane.networkRoot), []);
  t.false(existsSync(pane.stateDir));
  t.is(readFileSync(join(pane.dir, 'cdr.yaml'), 'utf8'), TEST_DEFAULT_CONFIG);
  t.deepEqual(pane.systemctl.calls().slice(1), ['stop imp-cdr.target imp-cdr-repository.service imp-cdr-snmp.service imp-cdr-pairing.service | index absent']);
  t.true(await pane.alive());
});

/** Starts two repositories with their pairing daemons, stopped and removed at teardown. */
async function startTwoPairingNodes(t: { teardown(fn: () => Promise<void> | void): void }): Promise<[PairingNode, PairingNode]> {
  const nodes = await Promise.all([startPairingNode(), startPairingNode()]);
  t.teardown(async () => {
    for (const node of nodes) {
      await node.daemon.stop();
      await node.node.stop();
      removeNode(node.node);
    }
  });
  return nodes;
}

/** Lists a folder's entries, sorted. */
function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}

test.serial('factory reset wipes node state', async (t) => {
  const [a, b] = await startTwoPairingNodes(t);

  // Pair A with B, so that A has a real peer record, replication certificate and pairing files.
  const opened = await cdrctlWithInput(b.node, ['pair', 'open']);
  t.is(opened.code, 0, opened.stderr);
  const code = /pairing code: +(\S+)/.exec(opened.stdout)![1]!;
  const joined = await cdrctlWithInput(a.node, ['pair', 'join', `127.0.0.1:${b.daemon.port}`, '--fingerprint', b.daemon.fingerprint, '--code', code]);
  t.is(joined.code, 0, joined.stderr);
  const nodeB = (await pairStatus(b)).nodeId;

  // Firmware state, which a reset keeps.
  const firmwareState = '{"current":null,"previous":null}\n';
  mkdirSync(join(a.node.dir, 'firmware'));
  writeFileSync(join(a.node.dir, 'firmware', 'state.json'), firmwareState);

  const pane = await startConsole(t, { configured: true, configPath: a.node.configPath });
  writeFileSync(pane.systemctl.pidsPath, `${a.node.process.pid}\n${a.daemon.process.pid}\n`);
  await pane.waitFor(/Choice:$/m);
  let before = (await pane.screen()).length;
  await pane.line('1');
  await pane.waitFor(/Role/, before);
  await pane.line('replication');
  await pane.waitFor(/address, CIDR/, before);
  await pane.line('198.51.100.7/24');
  await pane.waitFor(/Wrote .*10-imp-cdr-replication\.network/, before);

  const stateBefore = listing(a.node.dir);
  for (const entry of ['index', 'node-id', 'peer.json', 'tls', 'pairing', 'console', 'firmware', 'cdr.yaml']) {
    t.true(stateBefore.includes(entry), `${entry} exists before the reset`);
  }
  t.true(existsSync(join(a.node.dir, 'index', 'CURRENT')), 'the index is a LevelDB database');
  t.true(existsSync(join(a.node.dir, 'pairing', 'ssh_host_ed25519_key')));
  t.true(existsSync(join(a.node.dir, 'tls', 'replication.key')));
  const configBefore = readFileSync(a.node.configPath, 'utf8');

  // Declined: nothing changes and systemctl is not run.
  before = (await pane.screen()).length;
  await pane.line('9');
  const warning = await pane.waitFor(/Type RESET to confirm:$/m, before);
  t.true(warning.includes(`This node is paired with ${nodeB}, which keeps its record of this node: unpair first (option 3), or run "cdrctl unpair --local-only" on ${nodeB} afterwards.`));
  await pane.line('no');
  await pane.waitFor(/Factory reset cancelled; nothing was changed\./, before);
  t.deepEqual(listing(a.node.dir), stateBefore);
  t.is(readFileSync(a.node.configPath, 'utf8'), configBefore);
  t.deepEqual(listing(pane.networkRoot), ['10-imp-cdr-replication.network']);
  t.deepEqual(pane.systemctl.calls(), []);
  t.is((await cdrctlWithInput(a.node, ['status', '--json'])).code, 0, 'the repository still runs');

  // When the repository still accepts connections after systemctl stop, the state stays.
  writeFileSync(pane.systemctl.ignoreStopPath, '');
  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  await pane.waitFor(/Factory reset failed: the repository still accepts connections on .*control\.sock after systemctl stop, so nothing was removed; stop it and try again \(ERR_RESET_STILL_RUNNING\)/, before);
  t.deepEqual(listing(a.node.dir), stateBefore);
  t.is(readFileSync(a.node.configPath, 'utf8'), configBefore);
  rmSync(pane.systemctl.ignoreStopPath);

  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  const done = await pane.waitFor(/Factory reset done\.\nReboot now, so that the services start with the new state\? Type yes to confirm:$/m, before);
  for (const entry of ['index', 'node-id', 'peer.json', 'tls', 'pairing', 'console']) {
    t.true(done.includes(`Removed ${join(a.node.dir, entry)}\n`), `the screen lists ${entry}`);
  }
  t.true(done.includes(`Removed ${join(pane.networkRoot, '10-imp-cdr-replication.network')}\n`));
  t.true(done.includes(`Wrote the default configuration ${pane.defaultConfigPath} to ${a.node.configPath}.`));
  await pane.line('yes');
  await pane.waitFor(/reboot requested\./, before);
  await waitForExit(pane);
  t.is(await pane.exitStatus(), 0);

  // systemctl stop came first, while the index still existed; it ended both daemons; reboot came last.
  t.deepEqual(pane.systemctl.calls(), [
    'stop imp-cdr.target imp-cdr-repository.service imp-cdr-snmp.service imp-cdr-pairing.service | index present',
    'stop imp-cdr.target imp-cdr-repository.service imp-cdr-snmp.service imp-cdr-pairing.service | index present',
    'reboot | index absent',
  ]);
  t.is(await a.node.stop(), 0);
  t.is(await a.daemon.stop(), 0);

  t.deepEqual(listing(a.node.dir), ['cdr.yaml', 'firmware', 'run']);
  t.is(readFileSync(a.node.configPath, 'utf8'), TEST_DEFAULT_CONFIG);
  t.is(readFileSync(join(a.node.dir, 'firmware', 'state.json'), 'utf8'), firmwareState);
  t.deepEqual(listing(pane.networkRoot), []);
});

test.serial('firmware from menu rejects bad bundles', async (t) => {
  const pane = await startConsole(t, { configured: true });
  await pane.waitFor(/Choice:$/m);

  const missing = join(pane.dir, 'absent.bundle');
  const notTar = join(pane.dir, 'not-tar.bundle');
  writeFileSync(notTar, Buffer.alloc(3000, 7));
  const cases: Array<[string, RegExp]> = [
    [missing, /Firmware not applied: cannot read bundle .*absent\.bundle: file not found \(ERR_FW_BUNDLE_INVALID\)/],
    [notTar, /Firmware not applied: .*not-tar\.bundle \(3000 bytes\) is not a tar archive, so not a firmware bundle; check the file name \(ERR_FW_BUNDLE_INVALID\)/],
  ];
  for (const [bundle, message] of cases) {
    const before = (await pane.screen()).length;
    await pane.line('5');
    await pane.waitFor(/Firmware bundle path \(empty to cancel\):$/m, before);
    await pane.line(bundle);
    await pane.waitFor(message, before);
    await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);
  }

  const before = (await pane.screen()).length;
  await pane.line('5');
  await pane.waitFor(/Firmware bundle path/, before);
  await pane.line('');
  await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);

  t.false(existsSync(join(pane.dir, 'firmware', 'state.json')));
  t.deepEqual(
    readFileSync(join(pane.dir, 'firmware', 'history.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((line) => (JSON.parse(line) as { event: string; code: string }).code),
    ['ERR_FW_BUNDLE_INVALID', 'ERR_FW_BUNDLE_INVALID'],
  );
  t.true(await pane.alive());
});

interface PairJson {
  nodeId: string;
  replicationState: string;
  peer: { nodeId: string; host: string; replicationPort: number; sshHostKeyFingerprint: string } | null;
  window: { state: string; attempts: number; maxAttempts: number } | null;
}

async function pairStatus(node: PairingNode): Promise<PairJson> {
  const result = await cdrctlWithInput(node.node, ['pair', 'status', '--json']);
  if (result.code !== 0) throw new Error(`pair status failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PairJson;
}

async function waitForReplicationState(node: PairingNode, state: string): Promise<PairJson> {
  const deadline = Date.now() + 15_000;
  let status = await pairStatus(node);
  while (status.replicationState !== state && Date.now() < deadline) {
    await sleep(200);
    status = await pairStatus(node);
  }
  return status;
}

test.serial('pairing two nodes from the consoles', async (t) => {
  const [a, b] = await startTwoPairingNodes(t);
  const paneA = await startConsole(t, { configured: true, configPath: a.node.configPath });
  const paneB = await startConsole(t, { configured: true, configPath: b.node.configPath });
  await paneA.waitFor(/Choice:$/m);
  await paneB.waitFor(/Choice:$/m);
  const nodeA = (await pairStatus(a)).nodeId;
  const nodeB = (await pairStatus(b)).nodeId;

  // Node B opens a window; the console shows the code and the SSH host key.
  let before = (await paneB.screen()).length;
  await paneB.line('3');
  const statusText = await paneB.waitFor(/Pairing choice:$/m, before);
  t.true(statusText.includes(`Node ${nodeB}: not paired.`));
  t.true(statusText.includes(`This node's SSH host key ${b.daemon.fingerprint} on 127.0.0.1:${b.daemon.port}.`));
  t.true(statusText.includes('Pairing window closed.'));
  await paneB.line('1');
  const opened = await paneB.waitFor(/Pairing code: +(\S+)\nSSH host key: +(\S+)\n[\s\S]*Choice:$/m, before);
  const code = /Pairing code: +(\S+)/.exec(opened)![1]!;
  t.regex(code, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/);
  t.is(/SSH host key: +(\S+)/.exec(opened)![1], b.daemon.fingerprint);
  t.true(opened.includes(`Pairing window open until `));
  t.true(opened.includes(`On the other node choose 3, then 2, and enter this node's address with port ${b.daemon.port}.`));
  t.true(opened.includes('Check that it shows the same SSH host key. 3 wrong codes lock the window.'));

  // Node A joins with a wrong code first: the error is shown and the main menu comes back.
  const joinFromA = async (typedCode: string) => {
    const start = (await paneA.screen()).length;
    await paneA.line('3');
    await paneA.waitFor(/Pairing choice:$/m, start);
    await paneA.line('2');
    await paneA.waitFor(/Peer pairing address, HOST or HOST:PORT \(port 7302 by default; empty to cancel\):$/m, start);
    await paneA.line(`127.0.0.1:${b.daemon.port}`);
    const probed = await paneA.waitFor(/Type yes to confirm:$/m, start);
    t.true(probed.includes(`The pairing service at 127.0.0.1:${b.daemon.port} has SSH host key\n  ${b.daemon.fingerprint}\n`));
    await paneA.line('yes');
    await paneA.waitFor(/Pairing code:$/m, start);
    await paneA.line(typedCode);
    return start;
  };
  const wrongCode = code === '2222-2222' ? '3333-3333' : '2222-2222';
  before = await joinFromA(wrongCode);
  await paneA.waitFor(/Pairing failed: the pairing code is wrong; 2 attempts left before the window locks \(ERR_PAIR_CODE_INVALID\)\n[\s\S]* 0\) Leave the console\nChoice:$/m, before);
  t.is((await pairStatus(a)).peer, null);
  t.is((await pairStatus(b)).window?.attempts, 1);

  before = await joinFromA(code);
  await paneA.waitFor(new RegExp(`Paired with ${nodeB} \\(replication 127\\.0\\.0\\.1:${b.replicationPort}, SSH host key ${b.daemon.fingerprint.replace(/[+/]/g, '\\$&')}\\)\\.`), before);
  await paneA.waitFor(/ 0\) Leave the console\nChoice:$/m, before);

  const statusA = await waitForReplicationState(a, 'tailing');
  const statusB = await waitForReplicationState(b, 'tailing');
  t.is(statusA.peer?.nodeId, nodeB);
  t.is(statusB.peer?.nodeId, nodeA);
  t.is(statusA.peer?.host, '127.0.0.1');
  t.is(statusA.peer?.replicationPort, b.replicationPort);
  t.is(statusB.peer?.replicationPort, a.replicationPort);
  t.is(statusA.peer?.sshHostKeyFingerprint, b.daemon.fingerprint);
  t.is(statusB.peer?.sshHostKeyFingerprint, a.daemon.fingerprint);
  t.is(statusA.replicationState, 'tailing');
  t.is(statusB.replicationState, 'tailing');
  t.is(statusB.window?.state, 'closed');

  // The firmware readiness check passes once replication from the peer is tailing.
  const controlSocketA = join(a.node.dir, 'run', 'control.sock');
  t.is(await new SystemdFirmwareSystem(controlSocketA).waitReady(5000), undefined);

  // With node B's repository stopped, replication leaves tailing and the check reports it. The puller
  // alternates between connecting and disconnected while it retries, so either state is the last one seen.
  await b.node.stop();
  const failure = await new SystemdFirmwareSystem(controlSocketA).waitReady(3000);
  t.regex(failure ?? '', new RegExp(`^not ready within 3000 ms: replication from peer ${nodeB} \\(127\\.0\\.0\\.1:${b.replicationPort}\\) is (connecting|disconnected), not tailing$`));
  b.node = await restartNode(b.node);
  t.is((await waitForReplicationState(a, 'tailing')).replicationState, 'tailing');
  t.is(await new SystemdFirmwareSystem(controlSocketA).waitReady(5000), undefined);

  // Unpair from node A's console, declined once, then confirmed.
  before = (await paneA.screen()).length;
  await paneA.line('3');
  const pairedText = await paneA.waitFor(/Pairing choice:$/m, before);
  t.true(pairedText.includes(`Node ${nodeA}: paired with ${nodeB} at 127.0.0.1, replication tailing.`));
  await paneA.line('3');
  await paneA.waitFor(new RegExp(`Forget peer ${nodeB} on both nodes\\? Type yes to confirm:$`, 'm'), before);
  await paneA.line('no');
  await paneA.waitFor(/Unpair cancelled; nothing was changed\./, before);
  t.is((await pairStatus(a)).peer?.nodeId, nodeB);

  before = (await paneA.screen()).length;
  await paneA.line('3');
  await paneA.waitFor(/Pairing choice:$/m, before);
  await paneA.line('3');
  await paneA.waitFor(/Type yes to confirm:$/m, before);
  await paneA.line('yes');
  await paneA.waitFor(new RegExp(`Unpaired from ${nodeB} on both nodes\\.`), before);
  t.is((await pairStatus(a)).peer, null);
  t.is((await pairStatus(b)).peer, null);
  t.true(await paneA.alive());
  t.true(await paneB.alive());
});

test.serial('SNMP user and trap targets', async (t) => {
  const pane = await startConsole(t, { configured: true });
  await pane.waitFor(/Choice:$/m);
  const configPath = join(pane.dir, 'cdr.yaml');
  const previousPath = join(pane.stateDir, 'previous-cdr.yaml');
  const original = readFileSync(configPath, 'utf8');

  let before = (await pane.screen()).length;
  await pane.line('4');
  const settingsText = await pane.waitFor(/SNMP choice:$/m, before);
  t.true(
    settingsText.includes(
      'SNMP mode agentx: registers with the master agent at 127.0.0.1:705; the users and trap targets below apply in standalone mode only.\n' +
        'Engine id: generated at each start\nSNMPv3 users: none\nv2c communities: 0 (not shown)\nTrap targets: none\n',
    ),
  );
  await pane.line('0');
  await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);

  // Passphrases of 7 characters, one below the minimum, are rejected and nothing is written.
  const authPrompt = /Authentication passphrase \(at least 8 characters\):$/m;
  const authRepeat = /Repeat the authentication passphrase:$/m;
  const privPrompt = /Privacy passphrase \(at least 8 characters\):$/m;
  const shortCases: Array<[Array<[RegExp, string]>, RegExp]> = [
    [[[authPrompt, 'abcdefg']], /Invalid authentication passphrase: it has 7 characters; expected at least 8\. Nothing was changed\./],
    [
      [[authPrompt, 'authpass'], [authRepeat, 'authpass'], [privPrompt, 'privpas']],
      /Invalid privacy passphrase: it has 7 characters; expected at least 8\. Nothing was changed\./,
    ],
    [[[authPrompt, 'authpass'], [authRepeat, 'authpasX']], /The two entries of the authentication passphrase differ; nothing was changed\./],
  ];
  for (const [steps, message] of shortCases) {
    before = (await pane.screen()).length;
    await pane.line('4');
    await pane.waitFor(/SNMP choice:$/m, before);
    await pane.line('1');
    await pane.waitFor(/SNMPv3 user name \(1 to 32 characters, empty to cancel\):$/m, before);
    await pane.line('noc');
    // Each answer waits for its prompt, because a line typed before a hidden prompt would be echoed.
    let since = before;
    for (const [prompt, answer] of steps) {
      await pane.waitFor(prompt, since);
      since = (await pane.screen()).length;
      await pane.line(answer);
    }
    await pane.waitFor(message, before);
    await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);
    t.is(readFileSync(configPath, 'utf8'), original);
    t.false(existsSync(previousPath));
  }

  before = (await pane.screen()).length;
  await pane.line('4');
  await pane.waitFor(/SNMP choice:$/m, before);
  await pane.line('1');
  await pane.waitFor(/SNMPv3 user name/, before);
  await pane.line('noc');
  await pane.waitFor(/Authentication passphrase \(at least 8 characters\):$/m, before);
  await pane.line('authpas8');
  await pane.waitFor(/Repeat the authentication passphrase:$/m, before);
  await pane.line('authpas8');
  await pane.waitFor(/Privacy passphrase \(at least 8 characters\):$/m, before);
  await pane.line('privpas8');
  await pane.waitFor(/Repeat the privacy passphrase:$/m, before);
  await pane.line('privpas8');
  await pane.waitFor(new RegExp(`SNMPv3 user noc set \\(authPriv, sha256, aes128\\) in ${configPath.replace(/[.]/g, '\\.')}; restart imp-cdr-snmp to apply it\\.`), before);
  t.is(readFileSync(previousPath, 'utf8'), original);
  const withUser = readFileSync(configPath, 'utf8');
  t.deepEqual((parseYaml(withUser) as { snmp: unknown }).snmp, {
    standalone: {
      users: [{ name: 'noc', level: 'authPriv', authProtocol: 'sha256', authPassphrase: 'authpas8', privProtocol: 'aes128', privPassphrase: 'privpas8' }],
      trapTargets: [],
    },
  });

  before = (await pane.screen()).length;
  await pane.line('4');
  await pane.waitFor(/SNMP choice:$/m, before);
  await pane.line('2');
  await pane.waitFor(/Trap receiver address \(empty to cancel\):$/m, before);
  await pane.line('192.0.2.50');
  await pane.waitFor(/Trap receiver UDP port \(empty for 162\):$/m, before);
  await pane.line('70000');
  await pane.waitFor(/Invalid port "70000"; expected an integer from 1 to 65535\./, before);
  t.is(readFileSync(configPath, 'utf8'), withUser);

  before = (await pane.screen()).length;
  await pane.line('4');
  await pane.waitFor(/SNMP choice:$/m, before);
  await pane.line('2');
  await pane.waitFor(/Trap receiver address/, before);
  await pane.line('192.0.2.50');
  await pane.waitFor(/Trap receiver UDP port/, before);
  await pane.line('10162');
  const added = await pane.waitFor(/Trap target 192\.0\.2\.50:10162 added for user noc; restart imp-cdr-snmp to apply it\./, before);
  const engineId = /Set the fixed engine id ([0-9a-f]+); configure it on the trap receiver\./.exec(added)![1]!;
  // 32473 with the top bit set is 80007ed9, then the format octet 05 and 8 random octets.
  t.regex(engineId, /^80007ed905[0-9a-f]{16}$/);
  const snmp = (parseYaml(readFileSync(configPath, 'utf8')) as { snmp: { standalone: Record<string, unknown> } }).snmp;
  t.is(snmp.standalone['engineId'], engineId);
  t.deepEqual(snmp.standalone['trapTargets'], [{ host: '192.0.2.50', port: 10162, user: 'noc' }]);
  t.is(readFileSync(previousPath, 'utf8'), withUser);

  before = (await pane.screen()).length;
  await pane.line('4');
  const listed = await pane.waitFor(/SNMP choice:$/m, before);
  t.true(listed.includes(`Engine id: ${engineId}\nSNMPv3 users:\n  noc: authPriv, authentication sha256, privacy aes128\n`));
  t.true(listed.includes('Trap targets:\n  1) 192.0.2.50:10162 as SNMPv3 user noc\n'));
  await pane.line('0');
  await pane.waitFor(/ 0\) Leave the console\nChoice:$/m, before);

  // Restore puts back the file from before the trap target.
  before = (await pane.screen()).length;
  await pane.line('8');
  await pane.waitFor(new RegExp(`Restored the previous ${configPath.replace(/[.]/g, '\\.')}; restart imp-cdr-snmp to apply it\\.`), before);
  t.is(readFileSync(configPath, 'utf8'), withUser);
  t.false(existsSync(previousPath));

  const screen = await pane.screen();
  for (const secret of ['abcdefg', 'authpass', 'authpasX', 'privpas', 'authpas8', 'privpas8']) {
    t.false(screen.includes(secret), `the screen shows ${secret}`);
  }
  t.true(await pane.alive());
});
