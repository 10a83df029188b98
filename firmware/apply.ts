/**
 * Applying and rolling back firmware bundles on a node. The firmware state lives in
 * `<paths.state>/firmware/`:
 *
 *     state.json                     current and previous version, with manifest SHA-256 and payload
 *     payloads/VERSION/NAME.deb      payload of every version applied, kept for rollback
 *     history.jsonl                  one JSON line per apply, commit, rollback and rejection
 *
 * `applyBundle` verifies everything before it changes anything, installs the payload, restarts the
 * services and commits only when every unit is ready and the peer link works within the timeout.
 * Otherwise it reinstalls the previous payload by itself and reports why.
 */

import { appendFileSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CdrError } from '../services/common/errors.js';
import type { Logger } from '../services/common/logger.js';
import type { HardwareReport } from '../hw/check.js';
import { readVerifiedBundle, type VerifiedBundle } from './bundle.js';
import { compareVersions } from './manifest.js';
import type { KeyObject } from 'node:crypto';
import type { TrustedKey } from './release-key.js';

/** One installed firmware version. */
export interface InstalledFirmware {
  version: string;
  manifestSha256: string;
  /** Path of the kept payload, to reinstall on rollback. */
  payloadPath: string;
  appliedAt: string;
}

export interface FirmwareState {
  current: InstalledFirmware | null;
  previous: InstalledFirmware | null;
}

/**
 * System actions that applying firmware needs. `SystemdFirmwareSystem` in system.ts uses dpkg and
 * systemctl. Tests pass their own, because systemd does not run as PID 1 on the test machine.
 */
export interface FirmwareSystem {
  /** The version of the installed package, used when no firmware was applied yet. */
  installedVersion(): Promise<string | undefined>;
  /** OOS versions of the IMPs connected now; empty when the repository is not reachable. */
  connectedOosVersions(): Promise<string[]>;
  /** Installs a Debian package. */
  install(debPath: string): Promise<void>;
  /** Restarts every IMP-CDR unit. */
  restart(): Promise<void>;
  /** Waits until every unit is ready and the peer link works; resolves to the failure, or undefined. */
  waitReady(timeoutMs: number): Promise<string | undefined>;
}

export interface ApplyOptions {
  bundlePath: string;
  publicKey: KeyObject | TrustedKey;
  /** `<paths.state>/firmware`. */
  stateDir: string;
  /** The node's hardware check, run by the caller with its own --root and override. */
  hardware: HardwareReport;
  allowDowngrade: boolean;
  readyTimeoutMs: number;
  system: FirmwareSystem;
  log: Logger;
}

export type ApplyOutcome =
  | { result: 'committed'; version: string; previousVersion: string | undefined }
  | { result: 'rolled-back'; version: string; restoredVersion: string; reason: string };

/** Reads the firmware state; a node without one has nothing applied yet. */
export function readFirmwareState(stateDir: string): FirmwareState {
  const path = join(stateDir, 'state.json');
  if (!existsSync(path)) {
    return { current: null, previous: null };
  }
  return JSON.parse(readFileSync(path, 'utf8')) as FirmwareState;
}

/** Reads the last `limit` history entries, oldest first. */
export function readFirmwareHistory(stateDir: string, limit = 20): Array<Record<string, unknown>> {
  const path = join(stateDir, 'history.jsonl');
  if (!existsSync(path)) {
    return [];
  }
  const lines = readFileSync(path, 'utf8').split('\n').filter(Boolean);
  return lines.slice(-limit).map((line) => JSON.parse(line) as Record<string, unknown>);
}

/**
 * Verifies and applies the bundle at `options.bundlePath`.
 *
 * @throws CdrError from bundle verification, `ERR_HW_CHECK_FAILED`, `ERR_FW_WRONG_HARDWARE`,
 *   `ERR_FW_DOWNGRADE`, `ERR_FW_ALREADY_INSTALLED` or `ERR_FW_CLIENTS_TOO_OLD` before anything changes;
 *   `ERR_FW_INSTALL_FAILED` or `ERR_FW_NOT_READY` when the rollback failed too
 */
export async function applyBundle(options: ApplyOptions): Promise<ApplyOutcome> {
  const { stateDir, system, log } = options;
  let bundle: VerifiedBundle;
  try {
    bundle = await readVerifiedBundle(options.bundlePath, options.publicKey);
    await checkPolicy(bundle, options);
  } catch (error) {
    recordHistory(stateDir, { event: 'rejected', bundle: options.bundlePath, code: (error as CdrError).code, reason: (error as Error).message });
    log.error({ bundle: options.bundlePath, code: (error as CdrError).code, err: (error as Error).message }, 'firmware bundle rejected; nothing was changed');
    throw error;
  }

  const manifest = bundle.manifest;
  const state = readFirmwareState(stateDir);
  const previous = state.current ?? null;
  const [payloadName, payload] = [...bundle.payloads][0]!;
  const payloadDir = join(stateDir, 'payloads', manifest.version);
  mkdirSync(payloadDir, { recursive: true, mode: 0o750 });
  const payloadPath = join(payloadDir, payloadName);
  writeFileSync(`${payloadPath}.tmp`, payload);
  renameSync(`${payloadPath}.tmp`, payloadPath);
  const next: InstalledFirmware = { version: manifest.version, manifestSha256: bundle.manifestSha256, payloadPath, appliedAt: new Date().toISOString() };

  log.info({ version: manifest.version, previous: previous?.version, manifestSha256: bundle.manifestSha256 }, 'applying firmware');
  recordHistory(stateDir, { event: 'apply', version: manifest.version, previous: previous?.version ?? null, manifestSha256: bundle.manifestSha256 });

  const failure = await installAndWait(system, payloadPath, options.readyTimeoutMs);
  if (failure === undefined) {
    writeFirmwareState(stateDir, { current: next, previous });
    recordHistory(stateDir, { event: 'commit', version: manifest.version });
    log.info({ version: manifest.version }, 'firmware committed: every unit ready and the peer link works');
    return { result: 'committed', version: manifest.version, previousVersion: previous?.version };
  }

  log.error({ version: manifest.version, reason: failure }, 'firmware failed after install; rolling back');
  if (!previous) {
    recordHistory(stateDir, { event: 'rollback-impossible', version: manifest.version, reason: failure });
    throw new CdrError('ERR_FW_NO_PREVIOUS', `firmware ${manifest.version} failed (${failure}) and no previous firmware is recorded to roll back to; reinstall a known good bundle`, {
      details: { version: manifest.version },
    });
  }
  const rollbackFailure = await installAndWait(system, previous.payloadPath, options.readyTimeoutMs);
  if (rollbackFailure !== undefined) {
    recordHistory(stateDir, { event: 'rollback-failed', version: manifest.version, restored: previous.version, reason: rollbackFailure });
    throw new CdrError('ERR_FW_NOT_READY', `firmware ${manifest.version} failed (${failure}), and rolling back to ${previous.version} failed too (${rollbackFailure}); check the service logs`, {
      details: { version: manifest.version, previous: previous.version },
    });
  }
  recordHistory(stateDir, { event: 'rollback', version: manifest.version, restored: previous.version, reason: failure });
  log.warn({ version: manifest.version, restored: previous.version, reason: failure }, 'firmware rolled back');
  return { result: 'rolled-back', version: manifest.version, restoredVersion: previous.version, reason: failure };
}

/**
 * Reinstalls the previous firmware and makes it current; the rolled-back version becomes previous.
 * @throws CdrError `ERR_FW_NO_PREVIOUS`, `ERR_FW_INSTALL_FAILED` or `ERR_FW_NOT_READY`
 */
export async function rollbackFirmware(options: Pick<ApplyOptions, 'stateDir' | 'system' | 'readyTimeoutMs' | 'log'>): Promise<InstalledFirmware> {
  const state = readFirmwareState(options.stateDir);
  if (!state.previous || !state.current) {
    throw new CdrError('ERR_FW_NO_PREVIOUS', 'no previous firmware is recorded; cdrctl firmware status lists what was applied');
  }
  const failure = await installAndWait(options.system, state.previous.payloadPath, options.readyTimeoutMs);
  if (failure !== undefined) {
    recordHistory(options.stateDir, { event: 'rollback-failed', version: state.current.version, restored: state.previous.version, reason: failure });
    throw new CdrError('ERR_FW_NOT_READY', `rolling back to ${state.previous.version} failed: ${failure}`, { details: { version: state.previous.version } });
  }
  writeFirmwareState(options.stateDir, { current: state.previous, previous: state.current });
  recordHistory(options.stateDir, { event: 'rollback', version: state.current.version, restored: state.previous.version, reason: 'requested' });
  options.log.warn({ from: state.current.version, to: state.previous.version }, 'firmware rolled back on request');
  return state.previous;
}

async function checkPolicy(bundle: VerifiedBundle, options: ApplyOptions): Promise<void> {
  const { manifest } = bundle;
  const hardware = options.hardware;
  if (hardware.verdict === 'fail') {
    const failed = hardware.checks.filter((check) => check.status === 'fail').map((check) => `${check.name}: ${check.message}`);
    throw new CdrError('ERR_HW_CHECK_FAILED', `the hardware check failed, so no firmware is installed: ${failed.join('; ')}`, { details: { model: hardware.model } });
  }
  if (hardware.supported && !manifest.models.includes(hardware.model)) {
    throw new CdrError('ERR_FW_WRONG_HARDWARE', `bundle ${manifest.version} is for ${manifest.models.join(', ')}, but this node is an ${hardware.model}; use the bundle for ${hardware.model}`, {
      details: { models: manifest.models, model: hardware.model },
    });
  }

  const current = readFirmwareState(options.stateDir).current?.version ?? (await options.system.installedVersion());
  if (current !== undefined && !options.allowDowngrade) {
    const order = compareVersions(manifest.version, current);
    if (order < 0) {
      throw new CdrError('ERR_FW_DOWNGRADE', `bundle version ${manifest.version} is older than the installed ${current}; add --allow-downgrade to install it anyway`, {
        details: { version: manifest.version, installed: current },
      });
    }
    if (order === 0) {
      throw new CdrError('ERR_FW_ALREADY_INSTALLED', `version ${manifest.version} is already installed; add --allow-downgrade to reinstall it`, { details: { version: manifest.version } });
    }
  }

  const tooOld = (await options.system.connectedOosVersions()).filter((version) => compareVersions(version, manifest.minOosVersion) < 0);
  if (tooOld.length > 0) {
    throw new CdrError('ERR_FW_CLIENTS_TOO_OLD', `${tooOld.length} connected IMPs run OOS ${[...new Set(tooOld)].join(', ')}, older than the ${manifest.minOosVersion} this bundle requires; update them first`, {
      details: { minOosVersion: manifest.minOosVersion, versions: tooOld },
    });
  }
}

/** Installs the payload, restarts and waits; resolves to the failure, or undefined when ready. */
async function installAndWait(system: FirmwareSystem, payloadPath: string, readyTimeoutMs: number): Promise<string | undefined> {
  try {
    await system.install(payloadPath);
    await system.restart();
  } catch (error) {
    return `install failed: ${(error as Error).message}`;
  }
  return system.waitReady(readyTimeoutMs);
}

function writeFirmwareState(stateDir: string, state: FirmwareState): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  const path = join(stateDir, 'state.json');
  writeFileSync(`${path}.tmp`, `${JSON.stringify(state, null, 2)}\n`);
  renameSync(`${path}.tmp`, path);
}

function recordHistory(stateDir: string, entry: Record<string, unknown>): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o750 });
  appendFileSync(join(stateDir, 'history.jsonl'), `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
}
