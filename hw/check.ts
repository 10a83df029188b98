/**
 * The hardware check behind `cdrctl hw check` and `cdrctl firmware apply`: the node's model, cores,
 * memory, disk and interface roles against its profile.
 */

import type { ErrorCode } from '../services/common/errors.js';
import type { HardwareFacts } from './detect.js';
import { E_SERIES_PATTERN, O550_PROFILE, profileForProduct, type HardwareProfile, type InterfaceRole } from './profile.js';

/** Outcome of one check. `warn` is a failure accepted by `--allow-unsupported`. */
export type CheckStatus = 'pass' | 'fail' | 'warn';

export interface CheckResult {
  /** `model`, `cores`, `memory`, `disk`, or `interface ROLE`. */
  name: string;
  status: CheckStatus;
  /** Error code of a failed or overridden check. */
  code?: ErrorCode;
  message: string;
}

/**
 * Result of a hardware check: `pass` on a supported model meeting its profile, `override` when
 * `--allow-unsupported` accepted other hardware, `fail` otherwise.
 */
export interface HardwareReport {
  verdict: 'pass' | 'override' | 'fail';
  /** Model of the matching profile, or the DMI product name of unsupported hardware. */
  model: string;
  /** Whether the model is one IMP-CDR supports, so that firmware for it may be installed. */
  supported: boolean;
  checks: CheckResult[];
}

export interface CheckOptions {
  /** Accept hardware other than a supported model, turning its failures into warnings. Never accepts E-series. */
  allowUnsupported: boolean;
}

const ROLES: readonly InterfaceRole[] = ['management', 'replication', 'service'];
const GIB = 1024 ** 3;

/** Checks `facts` against the profile of their model (the O550 profile for unsupported hardware). */
export function checkHardware(facts: HardwareFacts, options: CheckOptions): HardwareReport {
  const productName = facts.productName;
  const profile = productName === undefined ? undefined : profileForProduct(productName);
  const checks: CheckResult[] = [];
  // Failures on unsupported hardware become warnings under the override; on a supported model they stay failures.
  const failStatus: CheckStatus = !profile && options.allowUnsupported ? 'warn' : 'fail';

  if (productName !== undefined && E_SERIES_PATTERN.test(productName)) {
    checks.push({
      name: 'model',
      status: 'fail',
      code: 'ERR_HW_E_SERIES',
      message: `E-series hardware ("${productName}") cannot run IMP-CDR, and --allow-unsupported does not change that; install IMP-CDR on an O550`,
    });
    return { verdict: 'fail', model: productName, supported: false, checks };
  }

  if (profile) {
    checks.push({ name: 'model', status: 'pass', message: `${profile.model} (DMI product name "${productName}", vendor "${facts.vendor ?? 'unknown'}")` });
  } else if (productName === undefined) {
    checks.push({
      name: 'model',
      status: failStatus,
      code: 'ERR_HW_DMI_UNREADABLE',
      message: `DMI product name is unreadable (sys/class/dmi/id/product_name), so the model is unknown; expected ${supportedNames()}. On lab hardware, run again with --allow-unsupported`,
    });
  } else {
    checks.push({
      name: 'model',
      status: failStatus,
      code: 'ERR_HW_UNSUPPORTED_MODEL',
      message: `DMI product name "${productName}" is not a supported model; expected ${supportedNames()}. On lab hardware, run again with --allow-unsupported`,
    });
  }

  const target = profile ?? O550_PROFILE;
  checks.push(checkMinimum('cores', facts.cores, target.minCores, String, failStatus));
  checks.push(checkMinimum('memory', facts.memoryBytes, target.minMemoryBytes, formatGib, failStatus, 'MemTotal in proc/meminfo'));
  const disk = facts.disks[0];
  checks.push(checkMinimum('disk', disk?.bytes, target.minDiskBytes, formatGb, failStatus, 'a fixed disk in sys/block', disk ? ` on ${disk.name}` : ''));
  for (const role of ROLES) {
    checks.push(checkInterface(role, target, facts, failStatus));
  }

  const verdict = checks.some((check) => check.status === 'fail') ? 'fail' : checks.some((check) => check.status === 'warn') ? 'override' : 'pass';
  return { verdict, model: profile?.model ?? productName ?? 'unknown', supported: profile !== undefined, checks };
}

function checkMinimum(
  name: string,
  value: number | undefined,
  minimum: number,
  format: (value: number) => string,
  failStatus: CheckStatus,
  source = name,
  where = '',
): CheckResult {
  if (value === undefined) {
    return { name, status: failStatus, code: 'ERR_HW_FACT_UNREADABLE', message: `cannot read ${source}; expected at least ${format(minimum)}` };
  }
  if (value < minimum) {
    return { name, status: failStatus, code: 'ERR_HW_BELOW_MINIMUM', message: `${format(value)}${where} is below the minimum of ${format(minimum)}` };
  }
  return { name, status: 'pass', message: `${format(value)}${where} (minimum ${format(minimum)})` };
}

function checkInterface(role: InterfaceRole, profile: HardwareProfile, facts: HardwareFacts, failStatus: CheckStatus): CheckResult {
  const name = `interface ${role}`;
  const expected = profile.interfaces[role];
  const found = facts.interfaces.find((candidate) => candidate.name === expected);
  if (!found) {
    const present = facts.interfaces.map((candidate) => candidate.name).join(', ') || 'none';
    return { name, status: failStatus, code: 'ERR_HW_INTERFACE_MISSING', message: `${expected} is missing (present: ${present})` };
  }
  if (!found.physical) {
    return { name, status: failStatus, code: 'ERR_HW_INTERFACE_MISSING', message: `${expected} is a virtual interface; the ${role} role needs a physical port` };
  }
  return { name, status: 'pass', message: `${expected} ${found.address}`.trim() };
}

function supportedNames(): string {
  return `"${O550_PROFILE.dmiProductNames.join('" or "')}"`;
}

function formatGib(bytes: number): string {
  return `${(bytes / GIB).toFixed(1)} GiB`;
}

function formatGb(bytes: number): string {
  return `${(bytes / 1000 ** 3).toFixed(0)} GB`;
}
