/**
 * Hardware profiles: the O550 appliance IMP-CDR is built for, and the rule that rejects E-series
 * hardware.
 */

/** Role of a network interface on the appliance. */
export type InterfaceRole = 'management' | 'replication' | 'service';

/** Minimum hardware and interface names of one appliance model. */
export interface HardwareProfile {
  /** Model name used in firmware manifests and messages. */
  model: string;
  /** DMI product names (`/sys/class/dmi/id/product_name`) that identify the model. */
  dmiProductNames: readonly string[];
  /** Minimum online CPU cores. */
  minCores: number;
  /**
   * Minimum `MemTotal` from `/proc/meminfo`, in bytes. It is below the installed memory because the
   * kernel and firmware reserve part of it.
   */
  minMemoryBytes: number;
  /** Minimum size of the largest fixed disk, in bytes. */
  minDiskBytes: number;
  /**
   * Interface name of each role: management (console, SSH, SNMP), replication (the pairing and
   * replication link to the peer node) and service (IMP clients).
   */
  interfaces: Readonly<Record<InterfaceRole, string>>;
}

const GIB = 1024 ** 3;

/**
 * The O550 appliance: 8 cores, 16 GiB of memory, a 480 GB disk, and three on-board ports named by
 * udev as eno1 (management), eno2 (replication, cabled to the peer) and eno3 (service).
 */
export const O550_PROFILE: HardwareProfile = Object.freeze({
  model: 'O550',
  dmiProductNames: Object.freeze(['O550']),
  minCores: 8,
  minMemoryBytes: 15 * GIB,
  minDiskBytes: 400 * 1000 ** 3,
  interfaces: Object.freeze({ management: 'eno1', replication: 'eno2', service: 'eno3' }),
});

/** DMI product names of E-series hardware, which IMP-CDR never runs on (E400, E-500, "E series"). */
export const E_SERIES_PATTERN = /^E[-\s]?(\d|series\b)/i;

/** Every profile IMP-CDR supports, looked up by DMI product name. */
export const PROFILES: readonly HardwareProfile[] = [O550_PROFILE];

/** Returns the profile whose DMI product names include `productName`, if any. */
export function profileForProduct(productName: string): HardwareProfile | undefined {
  return PROFILES.find((profile) => profile.dmiProductNames.includes(productName));
}
