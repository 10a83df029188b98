/**
 * The Debian package on this machine. The test builds it and its firmware bundle with
 * packaging/build-deb.sh --bundle, signed with a release key made for the test, and installs it
 * with dpkg -i. It starts the installed repository as the imp-cdr user with the installed configuration
 * and queries it with the installed cdrctl. Then it removes and purges the package and checks what is left.
 *
 * The host's PID 1 is not systemd, so this test starts the daemon the way its unit would (same
 * command, user and NOTIFY_SOCKET protocol) with setpriv instead of systemctl; test/systemd-boot.test.ts
 * runs the same package under systemd in a container. The test needs root and
 * dpkg, and it uses the installed configuration's IMP port 7300 on 127.0.0.1.
 */

import { execFile, spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { keyFingerprint, loadPublicKey } from '../firmware/bundle.js';
import { CDRCTL_MAIN, ROOT } from './helpers/node.js';
import { NotifyListener } from './helpers/notify.js';

const execFileAsync = promisify(execFile);

/** Paths the package installs or creates; none of them may remain after a purge. */
const REMOVED_ON_PURGE = [
  '/opt/imp-cdr',
  '/etc/imp-cdr',
  '/var/lib/imp-cdr',
  '/run/imp-cdr',
  '/usr/bin/cdrctl',
  '/lib/systemd/system/imp-cdr.target',
  '/lib/systemd/system/imp-cdr-repository.service',
  '/lib/systemd/system/imp-cdr-snmp.service',
  '/etc/snmp/snmpd.conf.d/imp-cdr.conf',
  '/lib/systemd/system/imp-cdr-pairing.service',
  '/usr/lib/sysusers.d/imp-cdr.conf',
  '/usr/lib/tmpfiles.d/imp-cdr.conf',
];

async function run(command: string, args: string[], options: { timeout?: number; env?: NodeJS.ProcessEnv } = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(command, args, { timeout: options.timeout ?? 120_000, maxBuffer: 16 * 1024 * 1024, env: options.env ?? process.env });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Runs `args` as the imp-cdr user and group, as `User=` and `Group=` in the units do. */
const AS_SERVICE_USER = ['setpriv', '--reuid', 'imp-cdr', '--regid', 'imp-cdr', '--init-groups'];

/** Starts the installed repository as the service user and resolves with its exit code and output. */
function startInstalledRepository(env: NodeJS.ProcessEnv): { exited: Promise<{ code: number | null; output: string }>; stop: () => void } {
  const child = spawn(AS_SERVICE_USER[0]!, [...AS_SERVICE_USER.slice(1), '/usr/bin/node', '/opt/imp-cdr/dist/services/repository/main.js', '--config', '/etc/imp-cdr/cdr.yaml'], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { PATH: process.env['PATH'], ...env },
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
  const exited = new Promise<{ code: number | null; output: string }>((resolveExit) => child.once('exit', (code) => resolveExit({ code, output })));
  return { exited, stop: () => child.kill('SIGTERM') };
}

const isRoot = process.getuid?.() === 0;

(isRoot ? test.serial : test.serial.skip)('package installs, serves and purges', async (t) => {
  t.timeout(300_000);
  const outputDir = mkdtempSync(join(tmpdir(), 'imp-cdr-deb-'));
  t.teardown(async () => {
    await run('dpkg', ['--purge', 'imp-cdr']);
    rmSync(outputDir, { recursive: true, force: true });
  });

  // A package left by an interrupted run would hide what this one installs.
  await run('dpkg', ['--purge', 'imp-cdr']);

  // A release build: IMP_CDR_RELEASE_KEY names a signing key made for this test, so the build neither
  // uses nor creates the development key under the checkout's var/.
  const keysDir = join(outputDir, 'keys');
  const keygen = await run(process.execPath, [CDRCTL_MAIN, 'firmware', 'keygen', '--out', keysDir]);
  t.is(keygen.code, 0, keygen.stderr);
  const releasePublicKey = readFileSync(join(keysDir, 'release-key.pem'), 'utf8');
  const fingerprint = keyFingerprint(loadPublicKey(join(keysDir, 'release-key.pem')));

  const built = await run('bash', [join(ROOT, 'packaging', 'build-deb.sh'), '--bundle', outputDir], {
    timeout: 240_000,
    env: { ...process.env, IMP_CDR_RELEASE_KEY: join(keysDir, 'signing-key.pem') },
  });
  t.is(built.code, 0, built.stderr);
  const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
  const arch = (await run('dpkg', ['--print-architecture'])).stdout.trim();
  const debPath = join(outputDir, `imp-cdr_${version}_${arch}.deb`);
  const bundlePath = join(outputDir, `imp-cdr_${version}_${arch}.bundle`);
  t.is(built.stdout, `${debPath}\n${bundlePath}\n`);
  t.true(built.stderr.includes(`firmware signing key: release key SHA-256 ${fingerprint} (from IMP_CDR_RELEASE_KEY=${join(keysDir, 'signing-key.pem')}); the package ships its public half\n`), built.stderr);

  const fields = await run('dpkg-deb', ['--show', '--showformat', '${Package} ${Version} ${Architecture}\n${Depends}\n', debPath]);
  t.is(fields.stdout, `imp-cdr ${version} ${arch}\nnodejs (>= 20.19), snmpd, systemd (>= 247), passwd\n`);
  const contents = (await run('dpkg-deb', ['--contents', debPath])).stdout;
  t.false(contents.includes('./opt/imp-cdr/dist/test/'), 'tests are not packaged');
  t.false(contents.includes('./opt/imp-cdr/node_modules/ava/'), 'development dependencies are pruned');
  t.true(contents.includes('./opt/imp-cdr/node_modules/unix-dgram/build/Release/unix_dgram.node'));
  t.true(contents.includes('./opt/imp-cdr/node_modules/classic-level/'));
  for (const path of ['./opt/imp-cdr/firmware/release-key.pem', './opt/imp-cdr/firmware/release-key.json', './opt/imp-cdr/defaults/cdr.yaml']) {
    t.true(contents.includes(` ${path}\n`), `${path} is packaged`);
  }
  t.false(contents.includes('signing-key'), 'the signing key is not packaged');

  // Install.
  const installed = await run('dpkg', ['-i', debPath]);
  t.is(installed.code, 0, installed.stderr);
  t.is((await run('dpkg-query', ['-W', '-f', '${Status}', 'imp-cdr'])).stdout, 'install ok installed');
  t.regex((await run('dpkg-query', ['-W', '-f', '${Conffiles}', 'imp-cdr'])).stdout, /^ \/etc\/imp-cdr\/cdr\.yaml [0-9a-f]{32}\n \/etc\/snmp\/snmpd\.conf\.d\/imp-cdr\.conf [0-9a-f]{32}$/);

  const user = (await run('getent', ['passwd', 'imp-cdr'])).stdout.trim().split(':');
  t.is(user[0], 'imp-cdr');
  t.true(Number(user[2]) < 1000, `uid ${user[2]} is a system uid`);
  t.is(user[5], '/var/lib/imp-cdr');
  t.is(user[6], '/usr/sbin/nologin');
  for (const [path, mode] of [['/var/lib/imp-cdr', 0o750], ['/run/imp-cdr', 0o750]] as const) {
    const stats = statSync(path);
    t.is(stats.mode & 0o777, mode, path);
    t.is(stats.uid, Number(user[2]), path);
  }
  const configStats = statSync('/etc/imp-cdr/cdr.yaml');
  t.is(configStats.mode & 0o777, 0o640);
  t.is(configStats.uid, 0);
  t.is(configStats.gid, Number(user[3]));

  // A configuration error stops the start with exit status 78 and names the file and line.
  const goodConfig = readFileSync('/etc/imp-cdr/cdr.yaml', 'utf8');
  appendFileSync('/etc/imp-cdr/cdr.yaml', 'imp:\n  prot: 7300\n');
  const broken = await startInstalledRepository({}).exited;
  t.is(broken.code, 78);
  t.regex(broken.output, /\/etc\/imp-cdr\/cdr\.yaml/);
  writeFileSync('/etc/imp-cdr/cdr.yaml', goodConfig);

  // Start as the service user, with NOTIFY_SOCKET as systemd would set it.
  const listener = new NotifyListener();
  listener.allowAnyUser();
  t.teardown(() => listener.close());
  const daemon = startInstalledRepository({ NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '2000000' });
  let exitCode: number | null | undefined;
  void daemon.exited.then(({ code }) => (exitCode = code));
  t.teardown(() => {
    if (exitCode === undefined) {
      daemon.stop();
    }
  });
  const ready = await listener.waitFor((datagram) => datagram.startsWith('READY=1'), 30_000);
  t.is(listener.datagrams[ready], 'READY=1\nSTATUS=serving IMPs on 127.0.0.1:7300; 0 clients, 0 observations, 0 lookups');
  await listener.waitFor((datagram) => datagram.startsWith('WATCHDOG=1'), 10_000, ready);

  const nodeId = readFileSync('/var/lib/imp-cdr/node-id', 'utf8').trim();
  t.is(statSync('/var/lib/imp-cdr/node-id').uid, Number(user[2]));
  t.is(statSync('/run/imp-cdr/control.sock').mode & 0o777, 0o660);

  // cdrctl from the PATH finds /etc/imp-cdr/cdr.yaml and the control socket, as root and as a member
  // of the imp-cdr group.
  for (const prefix of [[], AS_SERVICE_USER]) {
    const status = await run(prefix[0] ?? '/usr/bin/cdrctl', [...prefix.slice(1), ...(prefix.length ? ['/usr/bin/cdrctl'] : []), 'status', '--json']);
    t.is(status.code, 0, status.stderr);
    const parsed = JSON.parse(status.stdout) as { nodeId: string; softwareVersion: string; state: string; impListen: string };
    t.is(parsed.nodeId, nodeId);
    t.is(parsed.softwareVersion, version);
    t.is(parsed.state, 'open');
    t.is(parsed.impListen, '127.0.0.1:7300');
  }

  // The package ships the public half of the key that signed its bundle, and verify and status use it
  // without --public-key.
  t.is(readFileSync('/opt/imp-cdr/firmware/release-key.pem', 'utf8'), releasePublicKey);
  t.is(readFileSync('/opt/imp-cdr/defaults/cdr.yaml', 'utf8'), readFileSync(join(ROOT, 'packaging', 'debian', 'cdr.yaml'), 'utf8'));
  const verified = await run('/usr/bin/cdrctl', ['firmware', 'verify', bundlePath]);
  t.is(verified.code, 0, verified.stderr);
  t.true(verified.stdout.startsWith(`${bundlePath}: signature valid (key SHA-256 ${fingerprint}, release key)\n`), verified.stdout);
  const firmwareStatus = await run('/usr/bin/cdrctl', ['firmware', 'status']);
  t.is(firmwareStatus.code, 0, firmwareStatus.stderr);
  t.is(firmwareStatus.stdout.split('\n')[0], `trusted key: /opt/imp-cdr/firmware/release-key.pem, SHA-256 ${fingerprint}, release key`);

  // A bundle signed by another key is rejected, naming the trusted key.
  const otherKeys = join(outputDir, 'other-keys');
  t.is((await run(process.execPath, [CDRCTL_MAIN, 'firmware', 'keygen', '--out', otherKeys])).code, 0);
  const otherBundle = join(outputDir, 'other.bundle');
  const otherBuilt = await run(process.execPath, [CDRCTL_MAIN, 'firmware', 'build', '--deb', debPath, '--key', join(otherKeys, 'signing-key.pem'), '--out', otherBundle]);
  t.is(otherBuilt.code, 0, otherBuilt.stderr);
  const refused = await run('/usr/bin/cdrctl', ['firmware', 'verify', otherBundle]);
  t.is(refused.code, 1);
  t.is(refused.stderr, `cdrctl: the manifest signature of ${otherBundle} does not verify with the trusted public key (SHA-256 ${fingerprint}, release key); the bundle was changed or signed with another key (ERR_FW_SIGNATURE_INVALID)\n`);

  const unknown = await run('/usr/bin/cdrctl', ['frobnicate']);
  t.is(unknown.code, 2);
  t.regex(unknown.stderr, /unknown command "frobnicate" \(ERR_CLI_USAGE\)/);

  daemon.stop();
  const stopped = await daemon.exited;
  t.is(stopped.code, 0, stopped.output);
  t.true(listener.datagrams.includes('STOPPING=1\nSTATUS=stopping on SIGTERM'));

  // Remove keeps the conffile (with its local change) and the state; purge removes both.
  writeFileSync('/etc/imp-cdr/cdr.yaml', `${goodConfig}# changed on this node\n`);
  const removed = await run('dpkg', ['--remove', 'imp-cdr']);
  t.is(removed.code, 0, removed.stderr);
  t.false(existsSync('/opt/imp-cdr'));
  t.false(existsSync('/usr/bin/cdrctl'));
  t.true(readFileSync('/etc/imp-cdr/cdr.yaml', 'utf8').endsWith('# changed on this node\n'));
  t.is(readFileSync('/var/lib/imp-cdr/node-id', 'utf8').trim(), nodeId);

  const purged = await run('dpkg', ['--purge', 'imp-cdr']);
  t.is(purged.code, 0, purged.stderr);
  t.is((await run('dpkg-query', ['-W', '-f', '${Status}', 'imp-cdr'])).code, 1);
  for (const path of REMOVED_ON_PURGE) {
    t.false(existsSync(path), `${path} is left after purge`);
  }
  // The documented remainder: the system user and group, kept as Debian policy recommends.
  t.is((await run('getent', ['passwd', 'imp-cdr'])).code, 0);
  t.is((await run('getent', ['group', 'imp-cdr'])).code, 0);
});
