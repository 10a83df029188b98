/**
 * Object identifiers of IMP-CDR-MIB (packaging/mib/IMP-CDR-MIB.txt). Every OID hangs below
 * `1.3.6.1.4.1.<enterprise number>`, so one configuration value moves the whole tree; the layout below
 * must follow the MIB file.
 */

/** Enterprise number of IMP-CDR-MIB by default: 32473, reserved by IANA for documentation (RFC 5612). */
export const DEFAULT_ENTERPRISE_NUMBER = 32473;

/** Object groups below impCdrObjects (`<root>.1`), by MIB name and sub-identifier. */
export const GROUP = {
  node: 1,
  index: 2,
  traffic: 3,
  clients: 4,
  peer: 5,
  feeds: 6,
  anomalies: 7,
  firmware: 8,
} as const;

/** Notifications below impCdrNotifications (`<root>.0`), by MIB name and sub-identifier. */
export const NOTIFICATION = {
  impCdrPeerLost: 1,
  impCdrPeerRegained: 2,
  impCdrReplicationLagHigh: 3,
  impCdrFeedStale: 4,
  impCdrAnomalyDetected: 5,
  impCdrDiskSpaceLow: 6,
  impCdrFirmwareApplied: 7,
  impCdrFirmwareRolledBack: 8,
  impCdrNodeStateChanged: 9,
} as const;

export type NotificationName = keyof typeof NOTIFICATION;

/** OIDs of the SNMPv2-MIB system group that the standalone agent serves (RFC 3418). */
export const SYSTEM_OIDS = {
  sysDescr: '1.3.6.1.2.1.1.1',
  sysObjectID: '1.3.6.1.2.1.1.2',
  sysUpTime: '1.3.6.1.2.1.1.3',
  sysName: '1.3.6.1.2.1.1.5',
} as const;

/** OID arithmetic for one enterprise number. */
export class ImpCdrOids {
  /** impCdrMIB, the MODULE-IDENTITY. */
  readonly root: string;

  constructor(enterpriseNumber: number = DEFAULT_ENTERPRISE_NUMBER) {
    this.root = `1.3.6.1.4.1.${enterpriseNumber}`;
  }

  /** OID of an object type (no instance suffix) in `group`. */
  object(group: keyof typeof GROUP, ...subIdentifiers: number[]): string {
    return [this.root, 1, GROUP[group], ...subIdentifiers].join('.');
  }

  notification(name: NotificationName): string {
    return `${this.root}.0.${NOTIFICATION[name]}`;
  }
}
