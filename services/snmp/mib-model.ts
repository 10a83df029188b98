/**
 * The IMP-CDR-MIB objects as net-snmp MIB providers, and the code that writes a repository snapshot
 * into a net-snmp `Mib`. The standalone agent and the AgentX subagent share this model; only the
 * representation of Counter64 values differs (see counter64.ts).
 */

import snmp from 'net-snmp';

import { encodeCounter64Ber, toCounter64 } from './counter64.js';
import { DATE_AND_TIME_NEVER, encodeDateAndTime } from './date-and-time.js';
import { FEED_STATES, feedRow, type FeedRow } from './feed-state.js';
import type { PendingNotification } from './notifications.js';
import { ImpCdrOids, SYSTEM_OIDS } from './oids.js';
import type { RepositorySnapshot } from './snapshot.js';

/** Transport whose Counter64 representation net-snmp needs: `ber` for the UDP agent, `agentx` for the subagent. */
export type Transport = 'ber' | 'agentx';

/** Thresholds that the MIB shows beside the values they apply to. */
export interface ModelThresholds {
  replicationLagThresholdMs: number;
  diskFreeThresholdKiB: number;
}

/** One value as net-snmp takes it. */
export type MibValue = string | number | bigint | Buffer;

/** The part of net-snmp's Mib class that this module uses. */
export interface MibLike {
  registerProvider(provider: unknown): void;
  setScalarValue(name: string, value: MibValue): void;
  addTableRow(name: string, row: MibValue[]): void;
  deleteTableRow(name: string, rowIndex: number[]): boolean;
  lookup(oid: string): { value: unknown } | null;
}

interface ScalarDefinition {
  name: string;
  oid: string;
  type: number;
  read: (snapshot: RepositorySnapshot, thresholds: ModelThresholds) => MibValue;
}

const UINT32_MAX = 4_294_967_295;

const NODE_STATES = ['unreachable', 'idle', 'opening', 'open', 'closing', 'closed'];
const PEER_STATES = ['unknown', 'unpaired', 'connecting', 'syncing', 'tailing', 'disconnected'];

/** Enumeration value (from 1) of `name` in `names`, or `fallback` when it is not listed. */
function enumValue(names: string[], name: string | null | undefined, fallback: number): number {
  const position = names.indexOf(name ?? '');
  return position < 0 ? fallback : position + 1;
}

function gauge(value: number | null | undefined): number {
  const number = Number(value ?? 0);
  return Number.isFinite(number) ? Math.min(UINT32_MAX, Math.max(0, Math.floor(number))) : 0;
}

function kib(bytes: number | null | undefined): number {
  return gauge(Number(bytes ?? 0) / 1024);
}

function text(value: string | null | undefined, maxLength = 255): string {
  return (value ?? '').slice(0, maxLength);
}

/** Node state as the MIB enumerates it: unreachable(1) while the last poll failed. */
export function nodeStateValue(snapshot: RepositorySnapshot): number {
  return snapshot.reachable ? enumValue(NODE_STATES, snapshot.status?.state, 1) : 1;
}

/** Peer state as the MIB enumerates it: unknown(1) while the repository is unreachable. */
export function peerStateValue(snapshot: RepositorySnapshot): number {
  return snapshot.reachable ? enumValue(PEER_STATES, snapshot.pair?.replicationState, 1) : 1;
}

function nodeRoleValue(snapshot: RepositorySnapshot): number {
  if (!snapshot.reachable || !snapshot.status) {
    return 1;
  }
  return snapshot.pair?.peer?.nodeId ? 3 : 2;
}

function peerAddress(snapshot: RepositorySnapshot): string {
  const peer = snapshot.pair?.peer;
  return peer?.nodeId ? `${peer.host}:${peer.replicationPort}` : '';
}

/** Builds the scalar definitions of IMP-CDR-MIB for `oids`. */
function scalarDefinitions(oids: ImpCdrOids): ScalarDefinition[] {
  const T = snmp.ObjectType;
  const traffic = (field: string) => (s: RepositorySnapshot) =>
    toCounter64((s.status?.traffic as Record<string, number> | null | undefined)?.[field]);

  return [
    { name: 'impCdrNodeId', oid: oids.object('node', 1), type: T.OctetString, read: (s) => text(s.status?.nodeId, 63) },
    { name: 'impCdrNodeSoftwareVersion', oid: oids.object('node', 2), type: T.OctetString, read: (s) => text(s.status?.softwareVersion, 64) },
    { name: 'impCdrNodeRole', oid: oids.object('node', 3), type: T.Integer, read: nodeRoleValue },
    { name: 'impCdrNodeState', oid: oids.object('node', 4), type: T.Integer, read: nodeStateValue },
    {
      name: 'impCdrNodeUptime',
      oid: oids.object('node', 5),
      type: T.TimeTicks,
      read: (s) => (Number(s.status?.uptimeSeconds ?? 0) * 100) % (UINT32_MAX + 1),
    },
    { name: 'impCdrNodePolicyVersion', oid: oids.object('node', 6), type: T.Gauge, read: (s) => gauge(s.status?.policyVersion) },
    { name: 'impCdrNodeLastPoll', oid: oids.object('node', 7), type: T.OctetString, read: (s) => encodeDateAndTime(s.lastSuccessMs) },

    { name: 'impCdrIndexIpObjects', oid: oids.object('index', 1), type: T.Gauge, read: (s) => gauge(s.status?.objects?.ip) },
    { name: 'impCdrIndexNetworkObjects', oid: oids.object('index', 2), type: T.Gauge, read: (s) => gauge(s.status?.objects?.network) },
    { name: 'impCdrIndexDomainObjects', oid: oids.object('index', 3), type: T.Gauge, read: (s) => gauge(s.status?.objects?.domain) },
    { name: 'impCdrIndexUserObjects', oid: oids.object('index', 4), type: T.Gauge, read: (s) => gauge(s.status?.objects?.user) },
    { name: 'impCdrIndexSize', oid: oids.object('index', 5), type: T.Gauge, read: (s) => kib(s.status?.indexBytes) },
    { name: 'impCdrIndexDiskFree', oid: oids.object('index', 6), type: T.Gauge, read: (s) => kib(s.diskFreeBytes) },
    { name: 'impCdrIndexDiskFreeThreshold', oid: oids.object('index', 7), type: T.Gauge, read: (_, t) => gauge(t.diskFreeThresholdKiB) },

    { name: 'impCdrTrafficObservations', oid: oids.object('traffic', 1), type: T.Counter64, read: traffic('observations') },
    { name: 'impCdrTrafficObserveBatches', oid: oids.object('traffic', 2), type: T.Counter64, read: traffic('observeBatches') },
    { name: 'impCdrTrafficDuplicateBatches', oid: oids.object('traffic', 3), type: T.Counter64, read: traffic('duplicateBatches') },
    { name: 'impCdrTrafficLookups', oid: oids.object('traffic', 4), type: T.Counter64, read: traffic('lookups') },
    { name: 'impCdrTrafficLookupKeys', oid: oids.object('traffic', 5), type: T.Counter64, read: traffic('lookupKeys') },
    { name: 'impCdrTrafficErrors', oid: oids.object('traffic', 6), type: T.Counter64, read: traffic('errors') },
    { name: 'impCdrTrafficCacheHits', oid: oids.object('traffic', 7), type: T.Counter64, read: traffic('cacheHits') },
    { name: 'impCdrTrafficCacheMisses', oid: oids.object('traffic', 8), type: T.Counter64, read: traffic('cacheMisses') },
    { name: 'impCdrTrafficObservationRate', oid: oids.object('traffic', 9), type: T.Gauge, read: (s) => gauge(s.rates.observations) },
    { name: 'impCdrTrafficLookupKeyRate', oid: oids.object('traffic', 10), type: T.Gauge, read: (s) => gauge(s.rates.lookupKeys) },
    { name: 'impCdrTrafficErrorRate', oid: oids.object('traffic', 11), type: T.Gauge, read: (s) => gauge(s.rates.errors) },

    { name: 'impCdrClientCount', oid: oids.object('clients', 1), type: T.Gauge, read: (s) => gauge(s.status?.clients?.length) },

    { name: 'impCdrPeerState', oid: oids.object('peer', 1), type: T.Integer, read: peerStateValue },
    { name: 'impCdrPeerNodeId', oid: oids.object('peer', 2), type: T.OctetString, read: (s) => text(s.pair?.peer?.nodeId, 63) },
    { name: 'impCdrPeerAddress', oid: oids.object('peer', 3), type: T.OctetString, read: peerAddress },
    {
      name: 'impCdrPeerLastContact',
      oid: oids.object('peer', 4),
      type: T.OctetString,
      read: (s) => encodeDateAndTime(Number(s.pair?.lastContactMs ?? 0)),
    },
    { name: 'impCdrPeerReplicationLag', oid: oids.object('peer', 5), type: T.Gauge, read: (s) => gauge(s.pair?.lagMs) },
    { name: 'impCdrPeerBacklog', oid: oids.object('peer', 6), type: T.Gauge, read: (s) => gauge(s.pair?.backlog) },
    { name: 'impCdrPeerLagThreshold', oid: oids.object('peer', 7), type: T.Gauge, read: (_, t) => gauge(t.replicationLagThresholdMs) },

    { name: 'impCdrFeedCount', oid: oids.object('feeds', 1), type: T.Gauge, read: (s) => gauge(s.feeds.length) },

    // TODO: read anomalies from the control socket once the repository detects them.
    { name: 'impCdrAnomalyCount', oid: oids.object('anomalies', 1), type: T.Counter64, read: () => 0n },
    { name: 'impCdrAnomalyLastTime', oid: oids.object('anomalies', 2), type: T.OctetString, read: () => DATE_AND_TIME_NEVER },
    { name: 'impCdrAnomalyLastDescription', oid: oids.object('anomalies', 3), type: T.OctetString, read: () => '' },
  ];
}

const READ_ONLY = snmp.MaxAccess['read-only'];
const NOT_ACCESSIBLE = snmp.MaxAccess['not-accessible'];

/** Column layout of impCdrClientTable; column 1 is the index. */
const CLIENT_COLUMNS = [
  ['impCdrClientIndex', snmp.ObjectType.Gauge],
  ['impCdrClientImpId', snmp.ObjectType.OctetString],
  ['impCdrClientClusterId', snmp.ObjectType.OctetString],
  ['impCdrClientAddress', snmp.ObjectType.OctetString],
  ['impCdrClientModel', snmp.ObjectType.OctetString],
  ['impCdrClientOosVersion', snmp.ObjectType.OctetString],
  ['impCdrClientConnectedSince', snmp.ObjectType.OctetString],
  ['impCdrClientObservations', snmp.ObjectType.Counter64],
  ['impCdrClientLookups', snmp.ObjectType.Counter64],
] as const;

/** Column layout of impCdrFeedTable; column 1 is the index. */
const FEED_COLUMNS = [
  ['impCdrFeedIndex', snmp.ObjectType.Gauge],
  ['impCdrFeedName', snmp.ObjectType.OctetString],
  ['impCdrFeedState', snmp.ObjectType.Integer],
  ['impCdrFeedEntries', snmp.ObjectType.Gauge],
  ['impCdrFeedLastSuccess', snmp.ObjectType.OctetString],
  ['impCdrFeedAge', snmp.ObjectType.Gauge],
] as const;

function tableProvider(name: string, entryOid: string, columns: readonly (readonly [string, number])[]) {
  return {
    name,
    type: snmp.MibProviderType.Table,
    oid: entryOid,
    maxAccess: NOT_ACCESSIBLE,
    tableColumns: columns.map(([columnName, type], position) => ({
      number: position + 1,
      name: columnName,
      type,
      maxAccess: position === 0 ? NOT_ACCESSIBLE : READ_ONLY,
    })),
    tableIndex: [{ columnName: columns[0][0] }],
  };
}

/** The system group that a standalone agent serves, since no master agent provides it. */
export interface SystemGroup {
  descr: string;
  startedMs: number;
}

/** One notification varbind as net-snmp takes it. */
export interface Varbind {
  oid: string;
  type: number;
  value: MibValue;
}

/** Values of impCdrFeedTable columns 2 to 6 for `row`, in column order. */
function feedColumnValues(row: FeedRow): MibValue[] {
  return [text(row.name), enumValue([...FEED_STATES], row.state, 1), gauge(row.entries), encodeDateAndTime(row.lastSuccessMs), gauge(row.ageSeconds)];
}

/**
 * IMP-CDR-MIB for one enterprise number: registers its providers on a `Mib` and writes snapshots into
 * it. Client rows keep their index while their connection lasts (see `#clientIndexes`); feed rows keep
 * theirs while the agent runs (see `#feedIndexes`).
 */
export class ImpCdrMibModel {
  readonly oids: ImpCdrOids;
  readonly #scalars: ScalarDefinition[];
  readonly #thresholds: ModelThresholds;
  /** Row index per connection id; numbers are never reused while the agent runs. */
  readonly #clientIndexes = new Map<string, number>();
  #nextClientIndex = 1;
  /** Row index per feed id; a feed removed and added again gets its old number back. */
  readonly #feedIndexes = new Map<string, number>();
  #nextFeedIndex = 1;

  constructor(enterpriseNumber: number, thresholds: ModelThresholds) {
    this.oids = new ImpCdrOids(enterpriseNumber);
    this.#scalars = scalarDefinitions(this.oids);
    this.#thresholds = thresholds;
  }

  /** Provider definitions of every scalar and table, for `Mib.registerProvider` or `Subagent.registerProvider`. */
  providers(): unknown[] {
    return [
      ...this.#scalars.map((scalar) => ({
        name: scalar.name,
        type: snmp.MibProviderType.Scalar,
        oid: scalar.oid,
        scalarType: scalar.type,
        maxAccess: READ_ONLY,
      })),
      tableProvider('impCdrClientTable', this.oids.object('clients', 2, 1), CLIENT_COLUMNS),
      tableProvider('impCdrFeedTable', this.oids.object('feeds', 2, 1), FEED_COLUMNS),
    ];
  }

  /** Providers of sysDescr, sysObjectID, sysUpTime and sysName for the standalone agent. */
  systemProviders(): unknown[] {
    const T = snmp.ObjectType;
    const scalar = (name: string, oid: string, scalarType: number) => ({ name, type: snmp.MibProviderType.Scalar, oid, scalarType, maxAccess: READ_ONLY });
    return [
      scalar('sysDescr', SYSTEM_OIDS.sysDescr, T.OctetString),
      scalar('sysObjectID', SYSTEM_OIDS.sysObjectID, T.OID),
      scalar('sysUpTime', SYSTEM_OIDS.sysUpTime, T.TimeTicks),
      scalar('sysName', SYSTEM_OIDS.sysName, T.OctetString),
    ];
  }

  /** Writes the system group; sysUpTime is the agent's own uptime, as RFC 3418 defines it. */
  writeSystem(mib: MibLike, system: SystemGroup, snapshot: RepositorySnapshot, now: number = Date.now()): void {
    mib.setScalarValue('sysDescr', system.descr);
    mib.setScalarValue('sysObjectID', this.oids.root);
    mib.setScalarValue('sysUpTime', Math.floor((now - system.startedMs) / 10) % (UINT32_MAX + 1));
    mib.setScalarValue('sysName', text(snapshot.status?.nodeId));
  }

  /** Writes every object of `snapshot` into `mib`. */
  write(mib: MibLike, snapshot: RepositorySnapshot, transport: Transport): void {
    for (const scalar of this.#scalars) {
      const value = scalar.read(snapshot, this.#thresholds);
      mib.setScalarValue(scalar.name, value);
      if (scalar.type === snmp.ObjectType.Counter64 && transport === 'ber') {
        mib.lookup(`${scalar.oid}.0`)!.value = encodeCounter64Ber(value as bigint);
      }
    }
    this.#writeClients(mib, snapshot, transport);
    this.#writeFeeds(mib, snapshot);
  }

  /** Value and type of one scalar in `snapshot`, for notification varbinds. */
  varbind(name: string, snapshot: RepositorySnapshot, transport: Transport): Varbind {
    const scalar = this.#scalars.find((candidate) => candidate.name === name);
    if (!scalar) {
      throw new RangeError(`no scalar named ${name} in IMP-CDR-MIB`);
    }
    const value = scalar.read(snapshot, this.#thresholds);
    return {
      oid: `${scalar.oid}.0`,
      type: scalar.type,
      value: scalar.type === snmp.ObjectType.Counter64 && transport === 'ber' ? encodeCounter64Ber(value as bigint) : value,
    };
  }

  /**
   * Varbinds of `notification` in OBJECTS order: scalar instances, or the columns of the feed row that
   * `notification.feed` names.
   *
   * @throws RangeError when `notification.feed` is not in `snapshot.feeds`
   */
  notificationVarbinds(notification: PendingNotification, snapshot: RepositorySnapshot, transport: Transport): Varbind[] {
    if (notification.feed === undefined) {
      return notification.objects.map((name) => this.varbind(name, snapshot, transport));
    }

    const feed = snapshot.feeds.find((candidate) => candidate.definition?.id === notification.feed);
    if (!feed) {
      throw new RangeError(`feed ${notification.feed} is not in the snapshot that raised ${notification.name}`);
    }
    const rowIndex = this.#feedIndex(notification.feed);
    const values = feedColumnValues(feedRow(feed, snapshot.lastSuccessMs));
    return notification.objects.map((name) => {
      const column = FEED_COLUMNS.findIndex(([columnName]) => columnName === name);
      if (column < 1) {
        throw new RangeError(`no readable column named ${name} in impCdrFeedTable`);
      }
      return { oid: this.oids.object('feeds', 2, 1, column + 1, rowIndex), type: FEED_COLUMNS[column]![1], value: values[column - 1]! };
    });
  }

  #feedIndex(feedId: string): number {
    let rowIndex = this.#feedIndexes.get(feedId);
    if (rowIndex === undefined) {
      rowIndex = this.#nextFeedIndex++;
      this.#feedIndexes.set(feedId, rowIndex);
    }
    return rowIndex;
  }

  /** Writes one row per feed of `snapshot` and deletes the rows of feeds it no longer lists. */
  #writeFeeds(mib: MibLike, snapshot: RepositorySnapshot): void {
    const current = new Set(snapshot.feeds.map((feed) => feed.definition?.id ?? ''));
    for (const [feedId, rowIndex] of this.#feedIndexes) {
      // The index stays with the feed id, so the row of a feed removed earlier is already gone.
      const rowPresent = mib.lookup(this.oids.object('feeds', 2, 1, 2, rowIndex)) !== null;
      if (!current.has(feedId) && rowPresent) {
        mib.deleteTableRow('impCdrFeedTable', [rowIndex]);
      }
    }

    for (const feed of snapshot.feeds) {
      const row = feedRow(feed, snapshot.lastSuccessMs);
      mib.addTableRow('impCdrFeedTable', [this.#feedIndex(row.name), ...feedColumnValues(row)]);
    }
  }

  #writeClients(mib: MibLike, snapshot: RepositorySnapshot, transport: Transport): void {
    const clients = snapshot.status?.clients ?? [];
    const current = new Set(clients.map((client) => client.connectionId ?? ''));

    for (const [connectionId, rowIndex] of this.#clientIndexes) {
      if (!current.has(connectionId)) {
        mib.deleteTableRow('impCdrClientTable', [rowIndex]);
        this.#clientIndexes.delete(connectionId);
      }
    }

    const counterColumns = [8, 9];
    for (const client of clients) {
      const connectionId = client.connectionId ?? '';
      let rowIndex = this.#clientIndexes.get(connectionId);
      if (rowIndex === undefined) {
        rowIndex = this.#nextClientIndex++;
        this.#clientIndexes.set(connectionId, rowIndex);
      }
      const observations = toCounter64(client.observations);
      const lookups = toCounter64(client.lookups);
      mib.addTableRow('impCdrClientTable', [
        rowIndex,
        text(client.impId),
        text(client.clusterId),
        text(client.address),
        text(client.model),
        text(client.oosVersion),
        encodeDateAndTime(Number(client.connectedSinceMs ?? 0)),
        observations,
        lookups,
      ]);
      if (transport === 'ber') {
        const values = [observations, lookups];
        counterColumns.forEach((column, position) => {
          mib.lookup(`${this.oids.object('clients', 2, 1, column, rowIndex)}`)!.value = encodeCounter64Ber(values[position]!);
        });
      }
    }
  }
}
