/**
 * The Debian package under systemd as PID 1. The test boots systemd in a throw-away container whose
 * root is an overlay of this machine's root (test/helpers/systemd-container.ts), installs the package
 * there with dpkg -i, and checks what the units promise: every daemon of imp-cdr.target reaches
 * `active` through READY=1 under the full hardening of its unit, shows its STATUS= line, pings the
 * watchdog, comes back after kill -9, is killed and restarted by systemd when it stops pinging, and
 * stops cleanly with the target. A second test applies firmware bundles there with the installed
 * cdrctl: a good one is committed, a broken one rolled back. A third runs the console's factory reset
 * with the real systemctl. Nothing is installed on the host.
 */

import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';

import test, { type ExecutionContext } from 'ava';

import { O550_FIXTURE, writeHardwareFixture } from './helpers/hw-fixture.js';
import { ROOT } from './helpers/node.js';
import { SystemdContainer } from './helpers/systemd-container.js';

const execFileAsync = promisify(execFile);

const SERVICES = ['imp-cdr-repository.service', 'imp-cdr-snmp.service', 'imp-cdr-pairing.service'];

/** CAP_NET_BIND_SERVICE, bit 10: the one capability the repository unit keeps. */
const CAP_NET_BIND_SERVICE = 0x400n;

/** Fields of /proc/PID/status inside the container. */
async function processStatus(container: SystemdContainer, pid: string): Promise<Record<string, string>> {
  const result = await container.run(['cat', `/proc/${pid}/status`]);
  return Object.fromEntries(result.stdout.split('\n').filter((line) => line.includes(':')).map((line) => [line.slice(0, line.indexOf(':')), line.slice(line.indexOf(':') + 1).trim()]));
}

const isRoot = process.getuid?.() === 0;

/**
 * Boots a container for the test, builds the package into its shared folder, starts snmpd there and
 * installs the package with dpkg -i. snmpd is the AgentX master the subagent registers with, and the
 * postinst restarts it with the package's snmpd.conf.d file. The container stops when the test ends.
 */
async function bootWithPackage(t: ExecutionContext): Promise<{ container: SystemdContainer; deb: string }> {
  const work = mkdtempSync(join(tmpdir(), 'imp-cdr-systemd-'));
  t.teardown(() => rmSync(work, { recursive: true, force: true }));
  // SystemdContainer.boot stops what it started when it fails. Teardowns run last in, first out, so the
  // container stops before its folder is removed.
  const container = await SystemdContainer.boot(work);
  t.teardown(() => container.stop());

  const built = await execFileAsync('bash', [join(ROOT, 'packaging', 'build-deb.sh'), container.shareDir], { timeout: 240_000, maxBuffer: 16 * 1024 * 1024 });
  const deb = built.stdout.trim().split('\n').pop()!;
  t.log(deb);
  t.is((await container.run(['systemctl', 'start', 'snmpd.service'])).code, 0);
  const installed = await container.run(['dpkg', '-i', `/mnt/host-share/${basename(deb)}`]);
  t.is(installed.code, 0, installed.stdout + installed.stderr);
  return { container, deb };
}

(isRoot ? test.serial : test.serial.skip)('the package runs under systemd as PID 1', async (t) => {
  t.timeout(420_000);
  const { container } = await bootWithPackage(t);

  // Type=notify: `active` means the daemon sent READY=1.
  for (const unit of SERVICES) {
    const state = await container.waitFor(
      `${unit} to become active`,
      async () => {
        const properties = await container.show(unit, ['ActiveState', 'SubState', 'Result']);
        if (properties['ActiveState'] === 'failed') {
          const journal = await container.run(['journalctl', '--no-pager', '-n', '30', '-u', unit]);
          t.fail(`${unit} failed: ${journal.stdout}`);
          return properties;
        }
        return properties['ActiveState'] === 'active' ? properties : undefined;
      },
      120_000,
    );
    t.is(state['SubState'], 'running', unit);
  }
  t.is((await container.run(['systemctl', 'is-active', 'imp-cdr.target'])).stdout.trim(), 'active');

  const repository = await container.show('imp-cdr-repository.service', ['MainPID', 'StatusText', 'NRestarts', 'WatchdogUSec', 'WatchdogTimestampMonotonic']);
  t.regex(repository['StatusText']!, /^serving IMPs on 127\.0\.0\.1:7300; \d+ clients, \d+ observations, \d+ lookups$/);
  t.is(repository['NRestarts'], '0');
  t.is(repository['WatchdogUSec'], '30s');
  for (const unit of ['imp-cdr-snmp.service', 'imp-cdr-pairing.service']) {
    t.not((await container.show(unit, ['StatusText']))['StatusText'], '', `${unit} sends no STATUS= line`);
  }

  // The hardening of the unit is in force on the running process.
  const status = await processStatus(container, repository['MainPID']!);
  const serviceUser = await container.run(['id', '-u', 'imp-cdr']);
  t.is(status['Uid']!.split(/\s+/)[0], serviceUser.stdout.trim());
  t.is(status['NoNewPrivs'], '1');
  t.is(status['Seccomp'], '2');
  t.is(BigInt(`0x${status['CapEff']}`), CAP_NET_BIND_SERVICE);
  t.is(BigInt(`0x${status['CapBnd']}`), CAP_NET_BIND_SERVICE);
  const mounts = await container.run(['cat', `/proc/${repository['MainPID']}/mountinfo`]);
  const rootMount = mounts.stdout.split('\n').find((line) => line.split(' ')[4] === '/');
  t.regex(rootMount ?? '', /\sro[,\s]/, 'ProtectSystem=strict leaves / read-only');

  // The installed cdrctl talks to the supervised repository.
  const cdrctl = await container.run(['cdrctl', 'status']);
  t.is(cdrctl.code, 0, cdrctl.stderr);
  t.regex(cdrctl.stdout, /state open/);

  // Watchdog pings: systemd records each one; the daemon pings every WatchdogSec/2 = 15 s.
  const firstPing = Number(repository['WatchdogTimestampMonotonic']);
  const laterPing = await container.waitFor(
    'a later watchdog ping',
    async () => {
      const ping = Number((await container.show('imp-cdr-repository.service', ['WatchdogTimestampMonotonic']))['WatchdogTimestampMonotonic']);
      return ping > firstPing ? ping : undefined;
    },
    40_000,
  );
  t.true(laterPing > firstPing);

  // kill -9: Restart=on-failure brings the repository back with a new process.
  t.is((await container.run(['systemctl', 'kill', '--signal=SIGKILL', '--kill-whom=main', 'imp-cdr-repository.service'])).code, 0);
  const restarted = await container.waitFor(
    'the repository to restart after SIGKILL',
    async () => {
      const properties = await container.show('imp-cdr-repository.service', ['ActiveState', 'MainPID', 'NRestarts']);
      return properties['ActiveState'] === 'active' && properties['NRestarts'] === '1' ? properties : undefined;
    },
    60_000,
  );
  t.not(restarted['MainPID'], repository['MainPID']);

  // A daemon that stops pinging is killed by systemd and restarted. A drop-in shortens WatchdogSec to
  // 4 s for this step; SIGSTOP freezes the event loop as a wedged daemon would. A stopped process
  // keeps systemd's SIGABRT pending, so TimeoutAbortSec= bounds the wait for the SIGKILL after it.
  const dropIn = '/run/systemd/system/imp-cdr-repository.service.d';
  await container.run(['mkdir', '-p', dropIn]);
  await container.run(['sh', '-c', `printf '[Service]\\nWatchdogSec=4\\nTimeoutAbortSec=3\\n' > ${dropIn}/watchdog.conf`]);
  await container.run(['systemctl', 'daemon-reload']);
  t.is((await container.run(['systemctl', 'restart', 'imp-cdr-repository.service'])).code, 0);
  const beforeStop = await container.show('imp-cdr-repository.service', ['MainPID', 'NRestarts', 'WatchdogUSec']);
  t.is(beforeStop['WatchdogUSec'], '4s');
  // Two pings at 2 s intervals show the shorter watchdog is served before the daemon is frozen.
  await sleep(5_000);
  t.is((await container.show('imp-cdr-repository.service', ['ActiveState']))['ActiveState'], 'active');
  await container.run(['systemctl', 'kill', '--signal=SIGSTOP', '--kill-whom=main', 'imp-cdr-repository.service']);
  const afterWatchdog = await container.waitFor(
    'systemd to restart the frozen repository',
    async () => {
      const properties = await container.show('imp-cdr-repository.service', ['ActiveState', 'MainPID', 'NRestarts']);
      return properties['ActiveState'] === 'active' && properties['MainPID'] !== beforeStop['MainPID'] && properties['MainPID'] !== '0' ? properties : undefined;
    },
    60_000,
  );
  t.is(Number(afterWatchdog['NRestarts']), Number(beforeStop['NRestarts']) + 1);
  const journal = await container.run(['journalctl', '--no-pager', '-u', 'imp-cdr-repository.service']);
  t.regex(journal.stdout, /Watchdog timeout/);

  // The technician console replaces the login prompt on tty1 and the serial console. On a terminal
  // of its own it runs the first-boot wizard, and leaving it starts it again.
  t.is((await container.run(['systemctl', 'is-enabled', 'imp-cdr-console@tty1.service'])).stdout.trim(), 'enabled');
  t.is((await container.run(['systemctl', 'is-enabled', 'getty@tty1.service'])).stdout.trim(), 'masked');
  const onTerminal = await container.run(['python3', join(ROOT, 'test', 'helpers', 'pty-console.py')]);
  t.is(onTerminal.code, 0, onTerminal.stdout + onTerminal.stderr);
  const consoleUnit = onTerminal.stdout.split('\n')[0]!;
  t.regex(onTerminal.stdout, /First boot: this node is not configured yet\./);
  t.regex(onTerminal.stdout, /First boot finished\./);
  const unitState = /\nunit state: (.*)\n/.exec(onTerminal.stdout)?.[1] ?? '';
  t.regex(unitState, /(^| )ActiveState=active( |$)/);
  t.regex(unitState, /(^| )NRestarts=1( |$)/);
  t.regex(unitState, /(^| )TTYPath=\/dev\/pts\/\d+( |$)/);
  t.is((await container.run(['systemctl', 'is-active', consoleUnit])).stdout.trim(), 'inactive');

  // Stopping the target stops every daemon cleanly: SIGTERM, STOPPING=1, exit status 0.
  t.is((await container.run(['systemctl', 'stop', 'imp-cdr.target'])).code, 0);
  for (const unit of SERVICES) {
    // systemctl returns once the target's own stop job is done; the units' stop jobs may still run.
    const stopped = await container.waitFor(`${unit} to stop`, async () => {
      const properties = await container.show(unit, ['ActiveState', 'Result', 'ExecMainStatus']);
      return properties['ActiveState'] === 'inactive' || properties['ActiveState'] === 'failed' ? properties : undefined;
    });
    t.is(stopped['ActiveState'], 'inactive', unit);
    t.is(stopped['Result'], 'success', unit);
    t.is(stopped['ExecMainStatus'], '0', unit);
  }

  // Purge inside the container leaves no unit behind.
  const purged = await container.run(['dpkg', '--purge', 'imp-cdr']);
  t.is(purged.code, 0, purged.stdout + purged.stderr);
  const units = await container.run(['systemctl', 'list-unit-files', '--no-legend', 'imp-cdr*']);
  t.is(units.stdout.trim(), '');
  t.not((await container.run(['systemctl', 'is-enabled', 'getty@tty1.service'])).stdout.trim(), 'masked');
});

/** Repacks `deb` as version `version`; `breakRepository` makes the repository daemon exit at start. */
async function repack(deb: string, version: string, out: string, breakRepository = false): Promise<void> {
  const tree = `${out}.tree`;
  await execFileAsync('dpkg-deb', ['-R', deb, tree]);
  const controlPath = join(tree, 'DEBIAN', 'control');
  writeFileSync(controlPath, readFileSync(controlPath, 'utf8').replace(/^Version: .*$/m, `Version: ${version}`));
  if (breakRepository) {
    const main = join(tree, 'opt', 'imp-cdr', 'dist', 'services', 'repository', 'main.js');
    writeFileSync(main, `throw new Error('firmware ${version} cannot start');\n${readFileSync(main, 'utf8')}`);
  }
  await execFileAsync('dpkg-deb', ['--root-owner-group', '-Zgzip', '--build', tree, out], { maxBuffer: 16 * 1024 * 1024 });
  rmSync(tree, { recursive: true, force: true });
}

(isRoot ? test.serial : test.serial.skip)('firmware apply commits or rolls back under systemd', async (t) => {
  t.timeout(600_000);
  const { container, deb } = await bootWithPackage(t);
  const share = container.shareDir;
  const cdrctlOnHost = ['node', join(ROOT, 'dist', 'services', 'cdrctl', 'main.js')];
  await execFileAsync(cdrctlOnHost[0]!, [...cdrctlOnHost.slice(1), 'firmware', 'keygen', '--out', join(share, 'keys')]);
  for (const [version, broken] of [['0.2.0', false], ['0.3.0', true]] as const) {
    // A bundle's payload keeps the Debian file name, imp-cdr_VERSION_ARCH.deb.
    const repacked = join(share, basename(deb).replace(/_[^_]+_/, `_${version}_`));
    await repack(deb, version, repacked, broken);
    await execFileAsync(cdrctlOnHost[0]!, [...cdrctlOnHost.slice(1), 'firmware', 'build', '--deb', repacked, '--key', join(share, 'keys', 'signing-key.pem'), '--out', join(share, `${version}.bundle`)]);
  }
  await container.run(['sh', '-c', `printf 'firmware:\\n  readyTimeoutMs: 30000\\n' >> /etc/imp-cdr/cdr.yaml`]);
  const activeRepository = () =>
    container.waitFor('the repository to become active', async () => ((await container.show('imp-cdr-repository.service', ['ActiveState']))['ActiveState'] === 'active' ? true : undefined), 120_000);
  await activeRepository();

  const apply = (version: string) =>
    container.run(['cdrctl', 'firmware', 'apply', `/mnt/host-share/${version}.bundle`, '--public-key', '/mnt/host-share/keys/release-key.pem', '--allow-unsupported'], 300_000);
  const installedVersion = async () => (await container.run(['dpkg-query', '-W', '-f', '${Version}', 'imp-cdr'])).stdout.trim();

  // A good bundle is installed, every unit reports ready, and the version is committed.
  const good = await apply('0.2.0');
  t.is(good.code, 0, good.stdout + good.stderr);
  t.regex(good.stdout, /firmware 0\.2\.0 applied and committed/);
  t.is(await installedVersion(), '0.2.0');

  // A bundle whose repository cannot start is rolled back by apply itself, and the services run again.
  const bad = await apply('0.3.0');
  t.is(bad.code, 1, bad.stdout + bad.stderr);
  t.regex(bad.stderr, /firmware 0\.3\.0 rolled back to 0\.2\.0: .*imp-cdr-repository\.service/);
  t.is(await installedVersion(), '0.2.0');
  await activeRepository();
  const journal = await container.run(['journalctl', '--no-pager', '-u', 'imp-cdr-repository.service']);
  t.regex(journal.stdout, /firmware 0\.3\.0 cannot start/);

  const status = await container.run(['cdrctl', 'firmware', 'status']);
  t.is(status.code, 0, status.stderr);
  t.regex(status.stdout, /0\.2\.0/);
  const cdrctl = await container.run(['cdrctl', 'status']);
  t.is(cdrctl.code, 0, cdrctl.stderr);
});

(isRoot ? test.serial : test.serial.skip)('factory reset under systemd', async (t) => {
  t.timeout(420_000);
  const hwRoot = writeHardwareFixture(O550_FIXTURE);
  t.teardown(() => rmSync(hwRoot, { recursive: true, force: true }));
  const { container } = await bootWithPackage(t);
  // The console checks the hardware; the container has this machine's, so it gets an O550 fixture.
  cpSync(hwRoot, join(container.shareDir, 'hw'), { recursive: true });

  const nodeId = async () => /node (\S+) /.exec((await container.run(['cdrctl', 'status'])).stdout)?.[1];
  const firstNodeId = await container.waitFor('the repository to answer cdrctl status', nodeId, 120_000);
  await container.run(['sh', '-c', `printf 'firmware:\\n  readyTimeoutMs: 30000\\n' >> /etc/imp-cdr/cdr.yaml`]);

  // First boot, then option 9 with its confirmation; no reboot, and the input ends in the new wizard.
  const input = ['192.0.2.10/24', '192.0.2.1', 'correct horse battery', 'correct horse battery', '9', 'RESET', 'no', ''].join('\n');
  const consoleRun = await container.run(['sh', '-c', `printf '${input.replaceAll('\n', '\\n')}' | cdrctl console --network-root /run/test-network --root /mnt/host-share/hw`]);
  t.regex(consoleRun.stdout, /First boot finished\./);
  t.regex(consoleRun.stdout, /Factory reset done\./, consoleRun.stdout.slice(-2000));
  t.regex(consoleRun.stdout, /Input ended before the first-boot wizard finished; nothing was saved\.\s*$/);
  t.is(consoleRun.code, 1);

  // The real systemctl stopped every daemon before the state went away.
  for (const unit of SERVICES) {
    t.is((await container.run(['systemctl', 'is-active', unit])).stdout.trim(), 'inactive', unit);
  }
  const left = await container.run(['ls', '-A', '/var/lib/imp-cdr']);
  for (const gone of ['index', 'tls', 'node-id', 'console']) {
    t.false(left.stdout.split('\n').includes(gone), `${gone} is still in /var/lib/imp-cdr: ${left.stdout}`);
  }
  const config = await container.run(['cmp', '/etc/imp-cdr/cdr.yaml', '/opt/imp-cdr/defaults/cdr.yaml']);
  t.is(config.code, 0, config.stdout);

  // Started again, the node comes up empty, as a new node.
  t.is((await container.run(['systemctl', 'start', 'imp-cdr.target'])).code, 0);
  const secondNodeId = await container.waitFor('the repository to answer after the reset', nodeId, 120_000);
  t.not(secondNodeId, firstNodeId);
});
