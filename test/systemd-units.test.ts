/**
 * The systemd units in packaging/systemd: `systemd-analyze verify` accepts each without a warning,
 * `systemd-analyze security --offline=true` gives the pinned exposure score, and every service carries
 * the supervision and hardening settings the appliance relies on.
 */

import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { ROOT } from './helpers/node.js';

const execFileAsync = promisify(execFile);
const UNIT_DIR = join(ROOT, 'packaging', 'systemd');
const SERVICES = ['imp-cdr-repository', 'imp-cdr-snmp', 'imp-cdr-pairing'];
const CONSOLE_TEMPLATE = 'imp-cdr-console@.service';

/**
 * Exposure scores of systemd 252 (Debian 12), from 0 (fully confined) to 10. A change to the hardening
 * settings changes a score, and this table then has to be updated on purpose. The repository scores
 * higher because it keeps CAP_NET_BIND_SERVICE for the DNSBL front on port 53 and cannot use
 * PrivateUsers= with it.
 */
const EXPOSURE: Record<string, string> = {
  'imp-cdr-repository': '1.7',
  'imp-cdr-snmp': '1.4',
  'imp-cdr-pairing': '1.4',
};

async function run(command: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Parses one unit file into `section.Key` → values, in file order; repeated keys keep every value. */
function parseUnit(text: string): Map<string, string[]> {
  const entries = new Map<string, string[]>();
  let section = '';
  for (const rawLine of text.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) {
      continue;
    }
    if (line.startsWith('[')) {
      section = line.slice(1, -1);
      continue;
    }
    const separator = line.indexOf('=');
    const key = `${section}.${line.slice(0, separator)}`;
    entries.set(key, [...(entries.get(key) ?? []), line.slice(separator + 1)]);
  }
  return entries;
}

test('unit folder lists every unit', (t) => {
  t.deepEqual(readdirSync(UNIT_DIR).sort(), [...SERVICES.map((name) => `${name}.service`), CONSOLE_TEMPLATE, 'imp-cdr.target'].sort());
});

test('verify accepts the console on tty1', async (t) => {
  // systemd-analyze verifies instances, not templates, so the test names a copy after its instance.
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(UNIT_DIR, CONSOLE_TEMPLATE), join(dir, 'imp-cdr-console@tty1.service'));
  const result = await run('systemd-analyze', ['verify', join(dir, 'imp-cdr-console@tty1.service')]);
  t.is(result.code, 0, result.stderr);
  t.is(result.stderr, '');
});

test('security score of the console', async (t) => {
  // The console runs as root and installs firmware with dpkg, so most sandboxing is off. Its score is
  // pinned all the same, so that any change to its settings is made on purpose.
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(UNIT_DIR, CONSOLE_TEMPLATE), join(dir, 'imp-cdr-console@tty1.service'));
  const result = await run('systemd-analyze', ['security', '--offline=true', join(dir, 'imp-cdr-console@tty1.service')]);
  const match = /Overall exposure level for [^:]+: ([0-9.]+) (\w+)/.exec(result.stdout);
  t.is(match?.[1], '7.9', result.stdout.slice(-500));
  t.is(match?.[2], 'EXPOSED');
});

test('the console is outside the target', (t) => {
  // Restarts and stops of imp-cdr.target (firmware apply, factory reset) must not end a console session.
  const unit = parseUnit(readFileSync(join(UNIT_DIR, CONSOLE_TEMPLATE), 'utf8'));
  t.is(unit.get('Unit.PartOf'), undefined);
  t.deepEqual(unit.get('Service.Restart'), ['always']);
  t.deepEqual(unit.get('Service.TTYPath'), ['/dev/%I']);
  t.deepEqual(unit.get('Unit.Conflicts'), ['getty@%i.service serial-getty@%i.service']);
  t.deepEqual(unit.get('Install.WantedBy'), ['getty.target']);
});

for (const file of [...SERVICES.map((name) => `${name}.service`), 'imp-cdr.target']) {
  test(`verify accepts ${file}`, async (t) => {
    const result = await run('systemd-analyze', ['verify', join(UNIT_DIR, file)]);
    t.is(result.code, 0);
    t.is(result.stderr, '');
  });
}

test('verify reports a broken unit', async (t) => {
  // Shows that the check above can fail: systemd-analyze exits 0 on these, but warns on stderr.
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-units-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  copyFileSync(join(UNIT_DIR, 'imp-cdr.target'), join(dir, 'imp-cdr.target'));
  const text = readFileSync(join(UNIT_DIR, 'imp-cdr-pairing.service'), 'utf8').replace('WatchdogSec=30', 'WatchdogSec=thirty');
  writeFileSync(join(dir, 'imp-cdr-pairing.service'), text);

  const result = await run('systemd-analyze', ['verify', join(dir, 'imp-cdr-pairing.service')]);
  t.regex(result.stderr, /imp-cdr-pairing\.service:\d+: Failed to parse sec value, ignoring: thirty/);
});

for (const name of SERVICES) {
  test(`security score of ${name}`, async (t) => {
    const result = await run('systemd-analyze', ['security', '--offline=true', join(UNIT_DIR, `${name}.service`)]);
    const match = /Overall exposure level for [^:]+: ([0-9.]+) (\w+)/.exec(result.stdout);
    t.truthy(match, result.stdout.slice(-500));
    t.is(match?.[1], EXPOSURE[name]);
    t.is(match?.[2], 'OK');
  });

  test(`supervision settings of ${name}`, (t) => {
    const unit = parseUnit(readFileSync(join(UNIT_DIR, `${name}.service`), 'utf8'));
    const expected: Record<string, string[]> = {
      'Unit.PartOf': ['imp-cdr.target'],
      'Unit.StartLimitIntervalSec': ['300'],
      'Unit.StartLimitBurst': ['5'],
      'Service.Type': ['notify'],
      'Service.NotifyAccess': ['main'],
      'Service.WatchdogSec': ['30'],
      'Service.Restart': ['on-failure'],
      'Service.RestartPreventExitStatus': ['78'],
      'Service.User': ['imp-cdr'],
      'Service.Group': ['imp-cdr'],
      'Service.NoNewPrivileges': ['yes'],
      'Service.ProtectSystem': ['strict'],
      'Service.RestrictAddressFamilies': ['AF_UNIX AF_INET AF_INET6'],
      'Service.SystemCallFilter': ['@system-service', '~@privileged'],
      'Service.SystemCallArchitectures': ['native'],
      'Install.WantedBy': ['imp-cdr.target'],
    };
    for (const [key, values] of Object.entries(expected)) {
      t.deepEqual(unit.get(key), values, key);
    }
    t.is(unit.get('Service.MemoryDenyWriteExecute'), undefined);
    t.is(unit.get('Service.DynamicUser'), undefined);
    t.regex(unit.get('Service.ExecStart')![0]!, new RegExp(`^/usr/bin/node /opt/imp-cdr/dist/services/${name.replace('imp-cdr-', '')}/main\\.js --config /etc/imp-cdr/cdr\\.yaml$`));
  });
}

test('only the repository binds low ports', (t) => {
  for (const name of SERVICES) {
    const unit = parseUnit(readFileSync(join(UNIT_DIR, `${name}.service`), 'utf8'));
    const expected = name === 'imp-cdr-repository' ? ['CAP_NET_BIND_SERVICE'] : [''];
    t.deepEqual(unit.get('Service.CapabilityBoundingSet'), expected, name);
    t.deepEqual(unit.get('Service.AmbientCapabilities'), expected, name);
  }
});

test('only the repository owns /run/imp-cdr', (t) => {
  for (const name of SERVICES) {
    const unit = parseUnit(readFileSync(join(UNIT_DIR, `${name}.service`), 'utf8'));
    const expected = name === 'imp-cdr-repository' ? ['imp-cdr'] : undefined;
    t.deepEqual(unit.get('Service.RuntimeDirectory'), expected, name);
  }
});

test('target wants every service', (t) => {
  const target = parseUnit(readFileSync(join(UNIT_DIR, 'imp-cdr.target'), 'utf8'));
  t.deepEqual(target.get('Unit.Wants'), [SERVICES.map((name) => `${name}.service`).join(' '), 'network-online.target']);
  t.deepEqual(target.get('Install.WantedBy'), ['multi-user.target']);
});
