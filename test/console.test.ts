/**
 * The technician console driven in tmux as a technician would: keys go in with `send-keys`, the screen
 * is read with `capture-pane`. Each test runs its own tmux server on a socket in its own folder.
 */

import { execFile } from 'node:child_process';
import { generateKeyPairSync } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import test from 'ava';

import { CDRCTL_MAIN } from './helpers/node.js';
import { O550_FIXTURE, writeHardwareFixture } from './helpers/hw-fixture.js';

const execFileAsync = promisify(execFile);

interface ConsolePane {
  dir: string;
  networkRoot: string;
  stateDir: string;
  keys(...keys: string[]): Promise<void>;
  line(text: string): Promise<void>;
  /** Waits until the screen and its history match `pattern`, counting only output after `since`. */
  waitFor(pattern: RegExp, since?: number): Promise<string>;
  screen(): Promise<string>;
  alive(): Promise<boolean>;
}

async function startConsole(t: { teardown(fn: () => Promise<void> | void): void }, options: { configured: boolean }): Promise<ConsolePane> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-console-'));
  // The tmux server socket lives in the test folder, so the teardown removes it with the folder.
  const socket = join(dir, 'tmux.sock');
  const networkRoot = join(dir, 'network');
  const stateDir = join(dir, 'console');
  const hwRoot = writeHardwareFixture(O550_FIXTURE);
  const { publicKey } = generateKeyPairSync('ed25519');
  writeFileSync(join(dir, 'release-key.pem'), publicKey.export({ type: 'spki', format: 'pem' }));
  writeFileSync(join(dir, 'cdr.yaml'), 'paths:\n  state: .\n  run: run\nfirmware:\n  publicKey: release-key.pem\n');
  if (options.configured) {
    mkdirSync(stateDir);
    writeFileSync(join(stateDir, 'configured'), 'test\n');
  }

  const tmux = (...args: string[]) => execFileAsync('tmux', ['-S', socket, ...args]);
  const command = `${process.execPath} ${CDRCTL_MAIN} --config ${join(dir, 'cdr.yaml')} console --network-root ${networkRoot} --root ${hwRoot}`;
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
  };
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
  const deadline = Date.now() + 15_000;
  while ((await pane.alive()) && Date.now() < deadline) {
    await sleep(100);
  }
  t.false(await pane.alive());
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

  before = (await pane.screen()).length;
  await pane.line('9');
  await pane.waitFor(/Type RESET/, before);
  await pane.line('RESET');
  await pane.waitFor(/Factory reset done\.\nFirst boot: this node is not configured yet\./, before);
  t.deepEqual(readdirSync(pane.networkRoot), []);
  t.false(existsSync(join(pane.stateDir, 'configured')));
  t.true(await pane.alive());
});

test.serial('firmware from menu rejects bad bundles', async (t) => {
  const pane = await startConsole(t, { configured: true });
  await pane.waitFor(/Choice:$/m);

  const missing = join(pane.dir, 'absent.bundle');
  const truncated = join(pane.dir, 'truncated.bundle');
  writeFileSync(truncated, Buffer.alloc(3000, 7));
  const cases: Array<[string, RegExp]> = [
    [missing, /Firmware not applied: cannot read bundle .*absent\.bundle: ENOENT \(ERR_FW_BUNDLE_INVALID\)/],
    [truncated, /Firmware not applied: bundle .*truncated\.bundle \(3000 bytes\) does not end with the tar end-of-archive blocks; it was cut short, so copy it again \(ERR_FW_BUNDLE_TRUNCATED\)/],
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
    ['ERR_FW_BUNDLE_INVALID', 'ERR_FW_BUNDLE_TRUNCATED'],
  );
  t.true(await pane.alive());
});
