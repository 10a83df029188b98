/**
 * Firmware bundles: `cdrctl firmware` builds and verifies real signed bundles around real Debian
 * packages, and every bad bundle is rejected before anything changes. The apply and rollback rules
 * run in-process against a FirmwareSystem that records calls in place of dpkg and systemctl, because
 * systemd does not run as PID 1 on the test machine (the package test installs with dpkg for real).
 */

import { execFile } from 'node:child_process';
import { generateKeyPairSync, randomBytes as randomBytesOf } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';
import { create } from 'tar';

import { applyBundle, readFirmwareHistory, readFirmwareState, rollbackFirmware, type FirmwareSystem } from '../firmware/apply.js';
import { buildBundle, keyFingerprint, loadPrivateKey, loadPublicKey } from '../firmware/bundle.js';
import { loadTrustedKey, selectSigningKey, writeShippedKey } from '../firmware/release-key.js';
import { peerLinkFailure } from '../firmware/system.js';
import { checkHardware } from '../hw/check.js';
import { readHardwareFacts } from '../hw/detect.js';
import { isCdrError } from '../services/common/errors.js';
import { createLogger } from '../services/common/logger.js';
import { CDRCTL_MAIN, ROOT } from './helpers/node.js';
import { O550_FIXTURE, writeHardwareFixture } from './helpers/hw-fixture.js';

const execFileAsync = promisify(execFile);
const silentLog = createLogger('test', 'silent');

const work = mkdtempSync(join(tmpdir(), 'imp-cdr-fw-'));
const keysDir = join(work, 'keys');
const o550Root = writeHardwareFixture(O550_FIXTURE);
const eSeriesRoot = writeHardwareFixture({ ...O550_FIXTURE, productName: 'E400' });
const o550Report = checkHardware(readHardwareFacts(o550Root), { allowUnsupported: false });

test.after.always(() => {
  for (const dir of [work, o550Root, eSeriesRoot]) {
    rmSync(dir, { recursive: true, force: true });
  }
});

async function cdrctl(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(process.execPath, [CDRCTL_MAIN, ...args]);
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

/** Builds a small real Debian package named imp-cdr at `version` and returns its path. */
async function makeDeb(version: string): Promise<string> {
  const tree = mkdtempSync(join(work, 'deb-'));
  mkdirSync(join(tree, 'DEBIAN'));
  mkdirSync(join(tree, 'opt/imp-cdr'), { recursive: true });
  writeFileSync(join(tree, 'opt/imp-cdr/VERSION'), `${version}\n`);
  writeFileSync(join(tree, 'DEBIAN/control'), `Package: imp-cdr\nVersion: ${version}\nArchitecture: all\nMaintainer: test <test@localhost>\nDescription: test payload\n`);
  const out = join(mkdtempSync(join(work, 'out-')), `imp-cdr_${version}_all.deb`);
  await execFileAsync('dpkg-deb', ['--root-owner-group', '--build', tree, out]);
  return out;
}

/** Writes a tar archive with `entries` in order, for hand-made bad bundles. */
async function writeTar(path: string, entries: Array<[string, Buffer]>): Promise<void> {
  const staging = mkdtempSync(join(work, 'tar-'));
  for (const [name, contents] of entries) {
    mkdirSync(join(staging, name, '..'), { recursive: true });
    writeFileSync(join(staging, name), contents);
  }
  await create({ file: path, cwd: staging, portable: true, noDirRecurse: true }, entries.map(([name]) => name));
}

/** Reads the entries of a bundle built by cdrctl, to rewrite them. */
async function bundleEntries(path: string): Promise<Map<string, Buffer>> {
  const dir = mkdtempSync(join(work, 'x-'));
  await execFileAsync('tar', ['-xf', path, '-C', dir]);
  const entries = new Map<string, Buffer>();
  entries.set('manifest.json', readFileSync(join(dir, 'manifest.json')));
  entries.set('manifest.sig', readFileSync(join(dir, 'manifest.sig')));
  for (const name of readdirSync(join(dir, 'payload'))) {
    entries.set(`payload/${name}`, readFileSync(join(dir, 'payload', name)));
  }
  return entries;
}

function writeConfig(stateDir: string): string {
  const configPath = join(stateDir, 'cdr.yaml');
  writeFileSync(configPath, `paths:\n  state: .\n  run: run\nfirmware:\n  publicKey: ${join(keysDir, 'release-key.pem')}\n  readyTimeoutMs: 1000\n`);
  return configPath;
}

let goodBundle = '';
let deb020 = '';

test.before(async () => {
  const keygen = await cdrctl(['firmware', 'keygen', '--out', keysDir]);
  if (keygen.code !== 0) {
    throw new Error(keygen.stderr);
  }
  deb020 = await makeDeb('0.2.0');
  goodBundle = join(work, 'good.bundle');
  const built = await cdrctl(['firmware', 'build', '--deb', deb020, '--key', join(keysDir, 'signing-key.pem'), '--out', goodBundle]);
  if (built.code !== 0) {
    throw new Error(built.stderr);
  }
});

test('keygen writes an Ed25519 pair', (t) => {
  t.is(statSync(join(keysDir, 'signing-key.pem')).mode & 0o777, 0o600);
  t.is(loadPrivateKey(join(keysDir, 'signing-key.pem')).asymmetricKeyType, 'ed25519');
  t.is(loadPublicKey(join(keysDir, 'release-key.pem')).asymmetricKeyType, 'ed25519');
});

test('verify accepts a built bundle', async (t) => {
  const result = await cdrctl(['firmware', 'verify', goodBundle, '--public-key', join(keysDir, 'release-key.pem')]);
  t.is(result.code, 0, result.stderr);
  const lines = result.stdout.split('\n');
  t.regex(lines[0]!, /: signature valid \(key SHA-256 [0-9a-f]{64}, key without a build record\)$/);
  t.regex(lines[1]!, /^version 0\.2\.0 for O550, IMP clients OOS 2\.5 or later, built \d{4}-\d\d-\d\dT/);
  const sha256 = (await execFileAsync('sha256sum', [deb020])).stdout.split(' ')[0];
  t.is(lines[2], `payload imp-cdr_0.2.0_all.deb: ${statSync(deb020).size} bytes, SHA-256 ${sha256} matches`);
});

test('bad bundles rejected before changes', async (t) => {
  const entries = await bundleEntries(goodBundle);
  const manifest = entries.get('manifest.json')!;
  const signature = entries.get('manifest.sig')!;
  const payload = entries.get('payload/imp-cdr_0.2.0_all.deb')!;

  const tampered = join(work, 'tampered.bundle');
  await writeTar(tampered, [
    ['manifest.json', Buffer.from(manifest.toString('utf8').replace('"0.2.0"', '"9.9.9"'))],
    ['manifest.sig', signature],
    ['payload/imp-cdr_0.2.0_all.deb', payload],
  ]);

  const wrongHash = join(work, 'wrong-hash.bundle');
  const corrupted = Buffer.from(payload);
  corrupted[corrupted.length - 1] ^= 0xff;
  await writeTar(wrongHash, [['manifest.json', manifest], ['manifest.sig', signature], ['payload/imp-cdr_0.2.0_all.deb', corrupted]]);

  const missingPayload = join(work, 'missing-payload.bundle');
  await writeTar(missingPayload, [['manifest.json', manifest], ['manifest.sig', signature]]);

  const extraEntry = join(work, 'extra.bundle');
  await writeTar(extraEntry, [...entries.entries(), ['payload/imp-cdr_6.6.6_all.deb', payload]]);

  const wrongOrder = join(work, 'order.bundle');
  await writeTar(wrongOrder, [['manifest.sig', signature], ['manifest.json', manifest], ['payload/imp-cdr_0.2.0_all.deb', payload]]);

  const otherKey = join(work, 'other-key.bundle');
  const { privateKey } = generateKeyPairSync('ed25519');
  await buildBundle({ debPath: deb020, privateKey, version: '0.2.0', models: ['O550'], minOosVersion: '2.5', outPath: otherKey });

  const truncatedHalf = join(work, 'truncated-half.bundle');
  writeFileSync(truncatedHalf, readFileSync(goodBundle));
  truncateSync(truncatedHalf, Math.floor(statSync(goodBundle).size / 2));
  const truncatedBlock = join(work, 'truncated-block.bundle');
  writeFileSync(truncatedBlock, readFileSync(goodBundle).subarray(0, 2048));

  const randomBytes = join(work, 'random.bundle');
  writeFileSync(randomBytes, randomBytesOf(4000));
  const empty = join(work, 'empty.bundle');
  writeFileSync(empty, '');

  const notTar = join(work, 'not-tar.bundle');
  writeFileSync(notTar, Buffer.concat([Buffer.from('{"format":1}\n'.padEnd(1024, ' ')), Buffer.alloc(2048)]));

  const cases: Array<[string, string, string]> = [
    ['tampered manifest', tampered, 'ERR_FW_SIGNATURE_INVALID'],
    ['signed by another key', otherKey, 'ERR_FW_SIGNATURE_INVALID'],
    ['payload with wrong hash', wrongHash, 'ERR_FW_PAYLOAD_HASH'],
    ['payload missing', missingPayload, 'ERR_FW_PAYLOAD_MISSING'],
    ['unlisted payload', extraEntry, 'ERR_FW_BUNDLE_INVALID'],
    ['entries out of order', wrongOrder, 'ERR_FW_BUNDLE_INVALID'],
    ['truncated at half', truncatedHalf, 'ERR_FW_BUNDLE_TRUNCATED'],
    ['truncated at a block', truncatedBlock, 'ERR_FW_BUNDLE_TRUNCATED'],
    ['not a tar archive', notTar, 'ERR_FW_BUNDLE_INVALID'],
    ['random bytes', randomBytes, 'ERR_FW_BUNDLE_INVALID'],
    ['empty file', empty, 'ERR_FW_BUNDLE_INVALID'],
    ['no such file', join(work, 'absent.bundle'), 'ERR_FW_BUNDLE_INVALID'],
  ];

  const stateDir = mkdtempSync(join(work, 'node-'));
  const configPath = writeConfig(stateDir);
  for (const [label, bundle, code] of cases) {
    const verified = await cdrctl(['--config', configPath, 'firmware', 'verify', bundle]);
    t.is(verified.code, 1, `verify: ${label}`);
    t.true(verified.stderr.trim().endsWith(`(${code})`), `verify: ${label}: ${verified.stderr}`);

    const applied = await cdrctl(['--config', configPath, 'firmware', 'apply', bundle, '--root', o550Root]);
    t.is(applied.code, 1, `apply: ${label}`);
    t.true(applied.stderr.trim().endsWith(`(${code})`), `apply: ${label}: ${applied.stderr}`);
  }

  // Nothing changed: no firmware state and no kept payload, only the rejections in the history.
  t.false(existsSync(join(stateDir, 'firmware', 'state.json')));
  t.false(existsSync(join(stateDir, 'firmware', 'payloads')));
  const history = readFirmwareHistory(join(stateDir, 'firmware'), 100);
  t.deepEqual(
    history.map((entry) => [entry['event'], entry['code']]),
    cases.map(([, , code]) => ['rejected', code]),
  );
});

test('tampered manifest message names the key', async (t) => {
  const entries = await bundleEntries(goodBundle);
  const tampered = join(work, 'tampered-message.bundle');
  await writeTar(tampered, [
    ['manifest.json', Buffer.from(entries.get('manifest.json')!.toString('utf8').replace('"O550"', '"E400"'))],
    ['manifest.sig', entries.get('manifest.sig')!],
    ['payload/imp-cdr_0.2.0_all.deb', entries.get('payload/imp-cdr_0.2.0_all.deb')!],
  ]);
  const result = await cdrctl(['firmware', 'verify', tampered, '--public-key', join(keysDir, 'release-key.pem')]);
  t.regex(
    result.stderr,
    /^cdrctl: the manifest signature of .*tampered-message\.bundle does not verify with the trusted public key \(SHA-256 [0-9a-f]{64}\); the bundle was changed or signed with another key \(ERR_FW_SIGNATURE_INVALID\)\n$/,
  );
});

test('apply rejects other hardware', async (t) => {
  const otherModel = join(work, 'o990.bundle');
  const built = await cdrctl(['firmware', 'build', '--deb', deb020, '--key', join(keysDir, 'signing-key.pem'), '--out', otherModel, '--model', 'O990']);
  t.is(built.code, 0, built.stderr);

  const stateDir = mkdtempSync(join(work, 'node-'));
  const configPath = writeConfig(stateDir);
  const verified = await cdrctl(['--config', configPath, 'firmware', 'verify', otherModel]);
  t.is(verified.code, 0, 'the bundle itself is valid');

  const applied = await cdrctl(['--config', configPath, 'firmware', 'apply', otherModel, '--root', o550Root]);
  t.is(applied.code, 1);
  t.regex(applied.stderr, /bundle 0\.2\.0 is for O990, but this node is an O550; use the bundle for O550 \(ERR_FW_WRONG_HARDWARE\)/);

  const eSeries = await cdrctl(['--config', configPath, 'firmware', 'apply', goodBundle, '--root', eSeriesRoot, '--allow-unsupported']);
  t.is(eSeries.code, 1);
  t.regex(eSeries.stderr, /the hardware check failed, so no firmware is installed: model: E-series hardware \("E400"\) cannot run IMP-CDR.*\(ERR_HW_CHECK_FAILED\)/);
  t.false(existsSync(join(stateDir, 'firmware', 'state.json')));
});

test('build and verify bad command lines', async (t) => {
  const cases: Array<[string[], number, RegExp]> = [
    [['firmware'], 2, /firmware needs a subcommand: keygen, build, verify, apply, rollback or status \(ERR_CLI_USAGE\)/],
    [['firmware', 'flash'], 2, /unknown firmware subcommand "flash"/],
    [['firmware', 'build', '--deb', deb020], 2, /firmware build needs --deb FILE, --key PEM and --out BUNDLE/],
    [['firmware', 'verify'], 2, /firmware verify needs exactly one BUNDLE, got 0/],
    [['firmware', 'verify', goodBundle, goodBundle], 2, /firmware verify needs exactly one BUNDLE, got 2/],
    [['firmware', 'verify', goodBundle, '--public-key', join(keysDir, 'signing-key.pem')], 1, /signing-key\.pem is a private key; give the public key \(release-key\.pem\), and keep the signing key off the appliances \(ERR_FW_KEY_INVALID\)/],
    [['firmware', 'verify', goodBundle, '--public-key', join(work, 'absent.pem')], 1, /cannot read the Ed25519 public key .*absent\.pem: ENOENT \(ERR_FW_KEY_INVALID\)/],
    [['firmware', 'build', '--deb', join(work, 'absent.deb'), '--key', join(keysDir, 'signing-key.pem'), '--out', join(work, 'x.bundle')], 2, /cannot read the Version field of .*absent\.deb with dpkg-deb/],
    [['firmware', 'build', '--deb', deb020, '--key', join(keysDir, 'release-key.pem'), '--out', join(work, 'x.bundle')], 1, /\(ERR_FW_KEY_INVALID\)/],
    [['firmware', 'build', '--deb', deb020, '--key', join(keysDir, 'signing-key.pem'), '--out', join(work, 'x.bundle'), '--min-oos', 'two'], 1, /firmware manifest \/minOosVersion must match pattern .*\(ERR_FW_MANIFEST_INVALID\)/],
  ];
  for (const [args, code, message] of cases) {
    const result = await cdrctl(args);
    t.is(result.code, code, args.join(' '));
    t.regex(result.stderr, message, args.join(' '));
  }
  t.false(existsSync(join(work, 'x.bundle')));
});

/** Records the calls apply makes; `readyResults` decides each readiness wait, in order. */
class RecordingSystem implements FirmwareSystem {
  readonly installs: string[] = [];
  restarts = 0;
  readonly readyResults: Array<string | undefined>;
  installError: Error | undefined;
  oosVersions: string[] = [];

  constructor(readyResults: Array<string | undefined> = []) {
    this.readyResults = readyResults;
  }

  async installedVersion(): Promise<string | undefined> {
    return '0.1.0';
  }

  async connectedOosVersions(): Promise<string[]> {
    return this.oosVersions;
  }

  async install(debPath: string): Promise<void> {
    this.installs.push(debPath);
    if (this.installError) {
      const error = this.installError;
      this.installError = undefined;
      throw error;
    }
  }

  async restart(): Promise<void> {
    this.restarts += 1;
  }

  async waitReady(): Promise<string | undefined> {
    return this.readyResults.shift();
  }
}

async function bundleFor(version: string, options: { minOosVersion?: string } = {}): Promise<string> {
  const out = join(work, `v${version}-${Math.random().toString(16).slice(2)}.bundle`);
  await buildBundle({
    debPath: await makeDeb(version),
    privateKey: loadPrivateKey(join(keysDir, 'signing-key.pem')),
    version,
    models: ['O550'],
    minOosVersion: options.minOosVersion ?? '2.5',
    outPath: out,
  });
  return out;
}

function applyOptions(stateDir: string, bundlePath: string, system: FirmwareSystem, allowDowngrade = false) {
  return {
    bundlePath,
    publicKey: loadPublicKey(join(keysDir, 'release-key.pem')),
    stateDir,
    hardware: o550Report,
    allowDowngrade,
    readyTimeoutMs: 1000,
    system,
    log: silentLog,
  };
}

test('apply commits, then rolls back', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const system = new RecordingSystem([undefined, undefined, 'imp-cdr-repository.service is failed', undefined]);

  const first = await applyBundle(applyOptions(stateDir, await bundleFor('0.2.0'), system));
  t.deepEqual(first, { result: 'committed', version: '0.2.0', previousVersion: undefined });
  const second = await applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system));
  t.deepEqual(second, { result: 'committed', version: '0.3.0', previousVersion: '0.2.0' });

  const state = readFirmwareState(stateDir);
  t.is(state.current?.version, '0.3.0');
  t.is(state.previous?.version, '0.2.0');
  t.is(state.current?.payloadPath, join(stateDir, 'payloads', '0.3.0', 'imp-cdr_0.3.0_all.deb'));
  t.true(existsSync(state.previous!.payloadPath));

  const failed = await applyBundle(applyOptions(stateDir, await bundleFor('0.4.0'), system));
  t.deepEqual(failed, { result: 'rolled-back', version: '0.4.0', restoredVersion: '0.3.0', reason: 'imp-cdr-repository.service is failed' });
  t.deepEqual(system.installs, [
    join(stateDir, 'payloads', '0.2.0', 'imp-cdr_0.2.0_all.deb'),
    join(stateDir, 'payloads', '0.3.0', 'imp-cdr_0.3.0_all.deb'),
    join(stateDir, 'payloads', '0.4.0', 'imp-cdr_0.4.0_all.deb'),
    join(stateDir, 'payloads', '0.3.0', 'imp-cdr_0.3.0_all.deb'),
  ]);
  t.is(system.restarts, 4);
  t.is(readFirmwareState(stateDir).current?.version, '0.3.0');
  t.deepEqual(
    readFirmwareHistory(stateDir).map((entry) => entry['event']),
    ['apply', 'commit', 'apply', 'commit', 'apply', 'rollback'],
  );
  t.is(readFirmwareHistory(stateDir).at(-1)?.['reason'], 'imp-cdr-repository.service is failed');
});

test('version policy and downgrade override', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const system = new RecordingSystem([undefined, undefined]);
  await applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system));

  const older = await bundleFor('0.2.9');
  const downgrade = await t.throwsAsync(applyBundle(applyOptions(stateDir, older, system)));
  t.true(isCdrError(downgrade, 'ERR_FW_DOWNGRADE'));
  t.is(downgrade?.message, 'bundle version 0.2.9 is older than the installed 0.3.0; add --allow-downgrade to install it anyway');

  const same = await t.throwsAsync(applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system)));
  t.true(isCdrError(same, 'ERR_FW_ALREADY_INSTALLED'));
  t.is(system.installs.length, 1, 'rejections installed nothing');

  const allowed = await applyBundle(applyOptions(stateDir, older, system, true));
  t.is(allowed.result, 'committed');
  t.is(readFirmwareState(stateDir).current?.version, '0.2.9');

  // Before any firmware was applied, the installed package version (0.1.0 here) is the reference.
  const fresh = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const belowPackage = await t.throwsAsync(applyBundle(applyOptions(fresh, await bundleFor('0.0.9'), new RecordingSystem())));
  t.true(isCdrError(belowPackage, 'ERR_FW_DOWNGRADE'));
});

test('old IMP clients block apply', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const system = new RecordingSystem([undefined]);
  system.oosVersions = ['2.6.1', '2.5', '2.4.9', '2.4.9'];
  const error = await t.throwsAsync(applyBundle(applyOptions(stateDir, await bundleFor('0.2.0', { minOosVersion: '2.5' }), system)));
  t.true(isCdrError(error, 'ERR_FW_CLIENTS_TOO_OLD'));
  t.is(error?.message, '2 connected IMPs run OOS 2.4.9, older than the 2.5 this bundle requires; update them first');
  t.is(system.installs.length, 0);

  system.oosVersions = ['2.5', '2.6.1'];
  t.is((await applyBundle(applyOptions(stateDir, await bundleFor('0.2.0', { minOosVersion: '2.5' }), system))).result, 'committed');
});

test('failed install rolls back', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const system = new RecordingSystem([undefined, undefined]);
  await applyBundle(applyOptions(stateDir, await bundleFor('0.2.0'), system));
  system.installError = new Error('dpkg: error processing archive');
  const outcome = await applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system));
  t.deepEqual(outcome, { result: 'rolled-back', version: '0.3.0', restoredVersion: '0.2.0', reason: 'install failed: dpkg: error processing archive' });
});

test('failure without previous firmware', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const error = await t.throwsAsync(applyBundle(applyOptions(stateDir, await bundleFor('0.2.0'), new RecordingSystem(['imp-cdr-snmp.service is activating']))));
  t.true(isCdrError(error, 'ERR_FW_NO_PREVIOUS'));
  t.is(error?.message, 'firmware 0.2.0 failed (imp-cdr-snmp.service is activating) and no previous firmware is recorded to roll back to; reinstall a known good bundle');
  t.is(readFirmwareState(stateDir).current, null);
});

test('failed rollback is reported', async (t) => {
  const stateDir = join(mkdtempSync(join(work, 'node-')), 'firmware');
  const system = new RecordingSystem([undefined, 'not ready within 1000 ms: imp-cdr-repository.service is failed', 'control socket missing']);
  await applyBundle(applyOptions(stateDir, await bundleFor('0.2.0'), system));
  const error = await t.throwsAsync(applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system)));
  t.true(isCdrError(error, 'ERR_FW_NOT_READY'));
  t.is(error?.message, 'firmware 0.3.0 failed (not ready within 1000 ms: imp-cdr-repository.service is failed), and rolling back to 0.2.0 failed too (control socket missing); check the service logs');
  t.is(readFirmwareHistory(stateDir).at(-1)?.['event'], 'rollback-failed');
});

test('manual rollback swaps versions', async (t) => {
  const nodeDir = mkdtempSync(join(work, 'node-'));
  const stateDir = join(nodeDir, 'firmware');
  const system = new RecordingSystem([undefined, undefined, undefined]);

  const none = await t.throwsAsync(rollbackFirmware({ stateDir, system, readyTimeoutMs: 1000, log: silentLog }));
  t.true(isCdrError(none, 'ERR_FW_NO_PREVIOUS'));

  await applyBundle(applyOptions(stateDir, await bundleFor('0.2.0'), system));
  await applyBundle(applyOptions(stateDir, await bundleFor('0.3.0'), system));
  const restored = await rollbackFirmware({ stateDir, system, readyTimeoutMs: 1000, log: silentLog });
  t.is(restored.version, '0.2.0');
  const state = readFirmwareState(stateDir);
  t.is(state.current?.version, '0.2.0');
  t.is(state.previous?.version, '0.3.0');

  const status = await cdrctl(['--config', writeConfig(nodeDir), 'firmware', 'status']);
  t.is(status.code, 0, status.stderr);
  const lines = status.stdout.split('\n');
  t.is(lines[0], `trusted key: ${join(keysDir, 'release-key.pem')}, SHA-256 ${keyFingerprint(loadPublicKey(join(keysDir, 'release-key.pem')))}, key without a build record`);
  t.regex(lines[1]!, /^current firmware: 0\.2\.0 \(applied \S+, manifest SHA-256 [0-9a-f]{64}\)$/);
  t.regex(lines[2]!, /^previous firmware: 0\.3\.0 /);
  t.is(lines[3], 'history:');
  t.regex(lines.at(-2)!, / rollback version="0\.3\.0" restored="0\.2\.0" reason="requested"$/);

  const json = JSON.parse((await cdrctl(['--config', writeConfig(nodeDir), 'firmware', 'status', '--json'])).stdout) as { current: { version: string }; history: unknown[] };
  t.is(json.current.version, '0.2.0');
  t.is(json.history.length, 5);
});

test('peer link check reads the replication state', (t) => {
  const peer = { nodeId: 'cdr-b', host: '192.0.2.7', replicationPort: 7301 };
  const cases: Array<[string, Parameters<typeof peerLinkFailure>[0], string | undefined]> = [
    ['unpaired', { replicationState: 'unpaired' }, undefined],
    ['tailing', { peer, replicationState: 'tailing' }, undefined],
    ['connecting', { peer, replicationState: 'connecting' }, 'replication from peer cdr-b (192.0.2.7:7301) is connecting, not tailing'],
    ['syncing', { peer, replicationState: 'syncing' }, 'replication from peer cdr-b (192.0.2.7:7301) is syncing, not tailing'],
    ['disconnected', { peer, replicationState: 'disconnected' }, 'replication from peer cdr-b (192.0.2.7:7301) is disconnected, not tailing'],
    ['no state', { peer }, 'replication from peer cdr-b (192.0.2.7:7301) is unknown, not tailing'],
  ];
  for (const [name, pairStatus, expected] of cases) {
    t.is(peerLinkFailure(pairStatus), expected, name);
  }
});

test('development key made once', async (t) => {
  const checkout = mkdtempSync(join(work, 'checkout-'));
  const first = selectSigningKey({}, checkout);
  t.is(first.kind, 'development');
  t.true(first.created);
  t.is(first.path, join(checkout, 'var', 'firmware-dev-key', 'signing-key.pem'));
  t.is(statSync(first.path).mode & 0o777, 0o600);
  const second = selectSigningKey({}, checkout);
  t.false(second.created, 'a second build reuses the key');
  t.is(second.fingerprint, first.fingerprint);
  t.is(second.path, first.path);

  const shipDir = join(checkout, 'ship');
  const shipped = writeShippedKey(second, shipDir);
  t.is(shipped, join(shipDir, 'release-key.pem'));
  t.deepEqual(readdirSync(shipDir).sort(), ['release-key.json', 'release-key.pem']);
  t.regex(readFileSync(shipped, 'utf8'), /^-----BEGIN PUBLIC KEY-----\n/);
  t.false(readFileSync(shipped, 'utf8').includes('PRIVATE'), 'only the public half is shipped');
  t.deepEqual(JSON.parse(readFileSync(join(shipDir, 'release-key.json'), 'utf8')), { kind: 'development', fingerprint: first.fingerprint });
  const trusted = loadTrustedKey(shipped);
  t.is(trusted.kind, 'development');
  t.is(trusted.fingerprint, first.fingerprint);

  // A record of another key does not apply to this one.
  writeFileSync(join(shipDir, 'release-key.json'), JSON.stringify({ kind: 'release', fingerprint: '0'.repeat(64) }));
  t.is(loadTrustedKey(shipped).kind, 'unrecorded');
  writeFileSync(join(shipDir, 'release-key.json'), JSON.stringify({ kind: 'development', fingerprint: first.fingerprint }));
});

test('shipped key verifies by default', async (t) => {
  const checkout = mkdtempSync(join(work, 'checkout-'));
  const signing = selectSigningKey({}, checkout);
  const shipped = writeShippedKey(signing, join(checkout, 'opt-firmware'));
  const stateDir = mkdtempSync(join(work, 'node-'));
  const configPath = join(stateDir, 'cdr.yaml');
  writeFileSync(configPath, `paths:\n  state: .\n  run: run\nfirmware:\n  publicKey: ${shipped}\n  readyTimeoutMs: 1000\n`);

  const status = await cdrctl(['--config', configPath, 'firmware', 'status']);
  t.is(status.code, 0, status.stderr);
  const lines = status.stdout.split('\n');
  t.is(lines[0], `trusted key: ${shipped}, SHA-256 ${signing.fingerprint}, development key`);
  t.is(lines[1], '  a development build made this key, so only bundles from that build verify; bundles signed with the release key are rejected');
  t.is(lines[2], 'current firmware: none');
  const json = JSON.parse((await cdrctl(['--config', configPath, 'firmware', 'status', '--json'])).stdout) as { trustedKey: unknown };
  t.deepEqual(json.trustedKey, { path: shipped, fingerprint: signing.fingerprint, kind: 'development' });

  // A bundle signed with the development key verifies without --public-key.
  const devBundle = join(checkout, 'dev.bundle');
  const built = await cdrctl(['firmware', 'build', '--deb', deb020, '--key', signing.path, '--out', devBundle]);
  t.is(built.code, 0, built.stderr);
  const verified = await cdrctl(['--config', configPath, 'firmware', 'verify', devBundle]);
  t.is(verified.code, 0, verified.stderr);
  t.true(verified.stdout.startsWith(`${devBundle}: signature valid (key SHA-256 ${signing.fingerprint}, development key)\n`));

  // The bundle signed with another key (here the suite's release key) is rejected, and the message
  // names the trusted key and its kind.
  const expected = `cdrctl: the manifest signature of ${goodBundle} does not verify with the trusted public key (SHA-256 ${signing.fingerprint}, development key); the bundle was changed or signed with another key (ERR_FW_SIGNATURE_INVALID)\n`;
  const rejected = await cdrctl(['--config', configPath, 'firmware', 'verify', goodBundle]);
  t.is(rejected.code, 1);
  t.is(rejected.stderr, expected);
  const notApplied = await cdrctl(['--config', configPath, 'firmware', 'apply', goodBundle, '--root', o550Root]);
  t.is(notApplied.code, 1);
  t.true(notApplied.stderr.endsWith(expected), notApplied.stderr);
  t.false(existsSync(join(stateDir, 'firmware', 'state.json')));

  // Without the key, status still reports the firmware and names the problem.
  rmSync(shipped);
  const missing = await cdrctl(['--config', configPath, 'firmware', 'status']);
  t.is(missing.code, 0, missing.stderr);
  t.is(missing.stdout.split('\n')[0], `trusted key: cannot read the Ed25519 public key ${shipped}: ENOENT (ERR_FW_KEY_INVALID)`);
});

test('release key from the environment', async (t) => {
  const shipKey = join(ROOT, 'dist', 'firmware', 'ship-key.js');
  const run = async (releaseKey: string, outDir: string) => {
    try {
      const { stdout, stderr } = await execFileAsync(process.execPath, [shipKey, outDir], { env: { ...process.env, IMP_CDR_RELEASE_KEY: releaseKey } });
      return { code: 0, stdout, stderr };
    } catch (error) {
      const failed = error as { code: number; stdout: string; stderr: string };
      return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
    }
  };
  const signingPath = join(keysDir, 'signing-key.pem');
  const fingerprint = keyFingerprint(loadPrivateKey(signingPath));

  const outDir = join(mkdtempSync(join(work, 'ship-')), 'firmware');
  const shipped = await run(signingPath, outDir);
  t.is(shipped.code, 0, shipped.stderr);
  t.is(shipped.stdout, `${signingPath}\n`);
  t.is(shipped.stderr, `firmware signing key: release key SHA-256 ${fingerprint} (from IMP_CDR_RELEASE_KEY=${signingPath}); the package ships its public half\n`);
  t.is(readFileSync(join(outDir, 'release-key.pem'), 'utf8'), readFileSync(join(keysDir, 'release-key.pem'), 'utf8'));
  t.is(loadTrustedKey(join(outDir, 'release-key.pem')).kind, 'release');

  // A public key, or no file, cannot sign: the build stops and names the variable.
  const bad: Array<[string, RegExp]> = [
    [join(keysDir, 'release-key.pem'), /^ship-key: IMP_CDR_RELEASE_KEY=.*release-key\.pem is a public key; it must name the Ed25519 signing key \(private, PEM\), whose public half the build ships \(ERR_FW_KEY_INVALID\)\n$/],
    [join(work, 'absent.pem'), /^ship-key: IMP_CDR_RELEASE_KEY=.*absent\.pem: cannot read the Ed25519 private key .*absent\.pem: ENOENT; it must name the Ed25519 signing key \(private, PEM\) \(ERR_FW_KEY_INVALID\)\n$/],
  ];
  for (const [releaseKey, message] of bad) {
    const badOut = join(mkdtempSync(join(work, 'ship-')), 'firmware');
    const result = await run(releaseKey, badOut);
    t.is(result.code, 1, releaseKey);
    t.is(result.stdout, '', releaseKey);
    t.regex(result.stderr, message);
    t.false(existsSync(badOut), 'nothing is shipped');
  }
});
