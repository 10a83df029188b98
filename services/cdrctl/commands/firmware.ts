/**
 * `cdrctl firmware keygen|build|verify|apply|rollback|status`: signed firmware bundles (see
 * firmware/bundle.ts for the format and firmware/apply.ts for the apply and rollback rules).
 */

import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { parseArgs, promisify } from 'node:util';

import { applyBundle, readFirmwareHistory, readFirmwareState, rollbackFirmware } from '../../../firmware/apply.js';
import { buildBundle, generateSigningKeys, keyFingerprint, loadPrivateKey, readVerifiedBundle } from '../../../firmware/bundle.js';
import { describeKeyKind, loadTrustedKey, type TrustedKey } from '../../../firmware/release-key.js';
import { SystemdFirmwareSystem } from '../../../firmware/system.js';
import { resolveUnder } from '../../common/config.js';
import { createLogger } from '../../common/logger.js';
import { EXIT_FAILURE, EXIT_SUCCESS, usageError, type Command, type CommandContext } from '../command.js';
import { runHardwareCheck } from './hw.js';

const execFileAsync = promisify(execFile);

export const firmwareCommand: Command = {
  name: 'firmware',
  usage: [
    'firmware keygen --out DIR             write an Ed25519 signing key pair',
    'firmware build --deb FILE --key PEM --out BUNDLE [--model M ...] [--min-oos V]',
    '                                      sign a bundle; the version is the package version',
    'firmware verify BUNDLE [--public-key PEM]',
    '                                      check signature, manifest and payload hashes; PEM defaults to',
    '                                      firmware.publicKey, the key the package ships',
    'firmware apply BUNDLE [--public-key PEM] [--allow-downgrade] [--root DIR] [--allow-unsupported]',
    '                                      install, restart, commit when ready or roll back',
    'firmware rollback                     reinstall the previous firmware',
    'firmware status [--json]              trusted key, current and previous firmware, recent history',
  ],
  async run(context, args) {
    const [subcommand, ...rest] = args;
    switch (subcommand) {
      case 'keygen':
        return keygen(context, rest);
      case 'build':
        return build(context, rest);
      case 'verify':
        return verifyCommand(context, rest);
      case 'apply':
        return apply(context, rest);
      case 'rollback':
        return rollback(context, rest);
      case 'status':
        return status(context, rest);
      default:
        throw usageError(
          subcommand === undefined
            ? 'firmware needs a subcommand: keygen, build, verify, apply, rollback or status'
            : `unknown firmware subcommand "${subcommand}"; expected keygen, build, verify, apply, rollback or status`,
        );
    }
  },
};

function keygen(context: CommandContext, args: string[]): number {
  const { values } = parseArgs({ args, options: { out: { type: 'string' } }, strict: true });
  if (!values.out) {
    throw usageError('firmware keygen needs --out DIR');
  }
  const keys = generateSigningKeys(values.out);
  context.stdout(`signing key ${keys.privatePath} (keep it off the appliances)\npublic key ${keys.publicPath}, SHA-256 ${keys.fingerprint}\n`);
  return EXIT_SUCCESS;
}

async function build(context: CommandContext, args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      deb: { type: 'string' },
      key: { type: 'string' },
      out: { type: 'string' },
      model: { type: 'string', multiple: true },
      'min-oos': { type: 'string', default: '2.5' },
    },
    strict: true,
  });
  if (!values.deb || !values.key || !values.out) {
    throw usageError('firmware build needs --deb FILE, --key PEM and --out BUNDLE');
  }
  const privateKey = loadPrivateKey(values.key);
  let version: string;
  try {
    version = (await execFileAsync('dpkg-deb', ['--field', values.deb, 'Version'])).stdout.trim();
  } catch (error) {
    throw usageError(`cannot read the Version field of ${values.deb} with dpkg-deb: ${(error as { stderr?: string }).stderr?.trim() || (error as Error).message}`);
  }
  const manifest = await buildBundle({
    debPath: values.deb,
    privateKey,
    version,
    models: values.model ?? ['O550'],
    minOosVersion: values['min-oos'],
    outPath: values.out,
  });
  context.stdout(`wrote ${values.out}: imp-cdr ${manifest.version} for ${manifest.models.join(', ')}, signed by key SHA-256 ${keyFingerprint(privateKey)}\n`);
  return EXIT_SUCCESS;
}

async function verifyCommand(context: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: { 'public-key': { type: 'string' } }, allowPositionals: true, strict: true });
  const bundlePath = singleBundle(positionals, 'verify');
  const trusted = loadTrustedKey(values['public-key'] ?? context.loadConfig().firmware.publicKey);
  const bundle = await readVerifiedBundle(bundlePath, trusted);
  const { manifest } = bundle;
  context.stdout(
    [
      `${bundlePath}: signature valid (key SHA-256 ${trusted.fingerprint}, ${describeKeyKind(trusted.kind)})`,
      `version ${manifest.version} for ${manifest.models.join(', ')}, IMP clients OOS ${manifest.minOosVersion} or later, built ${manifest.created}`,
      ...manifest.payloads.map((payload) => `payload ${payload.name}: ${payload.bytes} bytes, SHA-256 ${payload.sha256} matches`),
      '',
    ].join('\n'),
  );
  return EXIT_SUCCESS;
}

async function apply(context: CommandContext, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: {
      'public-key': { type: 'string' },
      'allow-downgrade': { type: 'boolean', default: false },
      root: { type: 'string', default: '/' },
      'allow-unsupported': { type: 'boolean', default: false },
    },
    allowPositionals: true,
    strict: true,
  });
  const bundlePath = singleBundle(positionals, 'apply');
  const config = context.loadConfig();
  const log = createLogger('cdrctl', 'info', 2);
  const outcome = await applyBundle({
    bundlePath,
    publicKey: loadTrustedKey(values['public-key'] ?? config.firmware.publicKey),
    stateDir: join(config.paths.state, 'firmware'),
    hardware: runHardwareCheck(values.root, values['allow-unsupported']),
    allowDowngrade: values['allow-downgrade'],
    readyTimeoutMs: config.firmware.readyTimeoutMs,
    system: new SystemdFirmwareSystem(resolveUnder(config.paths.run, config.control.socket)),
    log,
  });
  if (outcome.result === 'committed') {
    context.stdout(`firmware ${outcome.version} applied and committed (previous: ${outcome.previousVersion ?? 'none'})\n`);
    return EXIT_SUCCESS;
  }
  context.stderr(`firmware ${outcome.version} rolled back to ${outcome.restoredVersion}: ${outcome.reason}\n`);
  return EXIT_FAILURE;
}

async function rollback(context: CommandContext, args: string[]): Promise<number> {
  parseArgs({ args, options: {}, strict: true });
  const config = context.loadConfig();
  const restored = await rollbackFirmware({
    stateDir: join(config.paths.state, 'firmware'),
    system: new SystemdFirmwareSystem(resolveUnder(config.paths.run, config.control.socket)),
    readyTimeoutMs: config.firmware.readyTimeoutMs,
    log: createLogger('cdrctl', 'info', 2),
  });
  context.stdout(`rolled back to firmware ${restored.version}\n`);
  return EXIT_SUCCESS;
}

function status(context: CommandContext, args: string[]): number {
  const { values } = parseArgs({ args, options: { json: { type: 'boolean', default: false } }, strict: true });
  const config = context.loadConfig();
  const stateDir = join(config.paths.state, 'firmware');
  const state = readFirmwareState(stateDir);
  const history = readFirmwareHistory(stateDir);
  const key = readTrustedKeyStatus(config.firmware.publicKey);
  if (values.json) {
    context.stdout(`${JSON.stringify({ trustedKey: key, ...state, history }, null, 2)}\n`);
    return EXIT_SUCCESS;
  }
  const describe = (entry: typeof state.current) => (entry ? `${entry.version} (applied ${entry.appliedAt}, manifest SHA-256 ${entry.manifestSha256})` : 'none');
  const lines = [
    'error' in key ? `trusted key: ${key.error} (${key.code})` : `trusted key: ${key.path}, SHA-256 ${key.fingerprint}, ${describeKeyKind(key.kind)}`,
  ];
  if ('kind' in key && key.kind === 'development') {
    lines.push('  a development build made this key, so only bundles from that build verify; bundles signed with the release key are rejected');
  }
  lines.push(`current firmware: ${describe(state.current)}`, `previous firmware: ${describe(state.previous)}`, 'history:');
  for (const entry of history) {
    const { time, event, ...rest } = entry;
    lines.push(`  ${String(time)} ${String(event)} ${Object.entries(rest).map(([key, value]) => `${key}=${JSON.stringify(value)}`).join(' ')}`);
  }
  context.stdout(`${lines.join('\n')}\n`);
  return EXIT_SUCCESS;
}

/** Reads the trusted key for `firmware status`: its fingerprint and kind, or why it cannot be read. */
function readTrustedKeyStatus(path: string): Pick<TrustedKey, 'path' | 'fingerprint' | 'kind'> | { path: string; error: string; code: string } {
  try {
    const { fingerprint, kind } = loadTrustedKey(path);
    return { path, fingerprint, kind };
  } catch (error) {
    return { path, error: (error as Error).message, code: (error as { code?: string }).code ?? 'ERR_FW_KEY_INVALID' };
  }
}

function singleBundle(positionals: string[], subcommand: string): string {
  if (positionals.length !== 1) {
    throw usageError(`firmware ${subcommand} needs exactly one BUNDLE, got ${positionals.length}`);
  }
  return positionals[0]!;
}
