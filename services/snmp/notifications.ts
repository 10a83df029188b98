/**
 * Decides which IMP-CDR-MIB notifications a new snapshot calls for, by comparing it with the previous
 * one. Each threshold notification is sent once per crossing: it is sent again only after the value
 * went back to the normal side.
 */

import { feedState } from './feed-state.js';
import type { NotificationName } from './oids.js';
import type { RepositorySnapshot } from './snapshot.js';

/** A notification to send and the objects (by MIB name) that go with it, in MIB OBJECTS order. */
export interface PendingNotification {
  name: NotificationName;
  objects: string[];
  /** Id of the feed whose impCdrFeedTable row supplies `objects`; set for impCdrFeedStale only. */
  feed?: string;
}

/** Objects of each notification, as its OBJECTS clause in IMP-CDR-MIB lists them. */
export const NOTIFICATION_OBJECTS: Record<NotificationName, string[]> = {
  impCdrPeerLost: ['impCdrPeerNodeId', 'impCdrPeerAddress', 'impCdrPeerState', 'impCdrPeerLastContact'],
  impCdrPeerRegained: ['impCdrPeerNodeId', 'impCdrPeerAddress', 'impCdrPeerState', 'impCdrPeerBacklog'],
  impCdrReplicationLagHigh: ['impCdrPeerNodeId', 'impCdrPeerReplicationLag', 'impCdrPeerBacklog', 'impCdrPeerLagThreshold'],
  impCdrFeedStale: ['impCdrFeedName', 'impCdrFeedState', 'impCdrFeedLastSuccess', 'impCdrFeedAge'],
  impCdrAnomalyDetected: ['impCdrAnomalyCount', 'impCdrAnomalyLastTime', 'impCdrAnomalyLastDescription'],
  impCdrDiskSpaceLow: ['impCdrNodeId', 'impCdrIndexDiskFree', 'impCdrIndexDiskFreeThreshold', 'impCdrIndexSize'],
  impCdrFirmwareApplied: ['impCdrNodeId', 'impCdrNodeSoftwareVersion'],
  impCdrFirmwareRolledBack: ['impCdrNodeId', 'impCdrNodeSoftwareVersion'],
  impCdrNodeStateChanged: ['impCdrNodeId', 'impCdrNodeState'],
};

/** Replication states in which changes reach the peer. */
const REPLICATING = new Set(['syncing', 'tailing']);

export interface DetectorThresholds {
  replicationLagThresholdMs: number;
  diskFreeThresholdKiB: number;
}

/** Compares each snapshot with the one before and returns the notifications it calls for. */
export class NotificationDetector {
  readonly #thresholds: DetectorThresholds;
  #previous: RepositorySnapshot | undefined;
  /** Set by impCdrPeerLost and cleared by impCdrPeerRegained, so a first connection is no "regained". */
  #peerLost = false;
  #diskLow = false;
  #lagHigh = false;
  /** Ids of feeds that impCdrFeedStale was sent for and that have not been ok since. */
  readonly #staleFeeds = new Set<string>();

  constructor(thresholds: DetectorThresholds) {
    this.#thresholds = thresholds;
  }

  /** Software version before the last firmware notification; sent as impCdrFirmwarePreviousVersion. */
  previousSoftwareVersion = '';

  next(snapshot: RepositorySnapshot): PendingNotification[] {
    const previous = this.#previous;
    this.#previous = snapshot;
    const pending: PendingNotification[] = [];
    const add = (name: NotificationName) => pending.push({ name, objects: NOTIFICATION_OBJECTS[name] });

    if (previous && nodeState(previous) !== nodeState(snapshot)) {
      add('impCdrNodeStateChanged');
    }

    const diskLow = snapshot.diskFreeBytes !== undefined && snapshot.diskFreeBytes < this.#thresholds.diskFreeThresholdKiB * 1024;
    if (diskLow && !this.#diskLow) {
      add('impCdrDiskSpaceLow');
    }
    if (snapshot.diskFreeBytes !== undefined) {
      this.#diskLow = diskLow;
    }

    if (snapshot.reachable) {
      for (const feed of this.#staleFeedsEntered(snapshot)) {
        pending.push({ name: 'impCdrFeedStale', objects: NOTIFICATION_OBJECTS.impCdrFeedStale, feed });
      }
    }

    // Peer, lag and firmware changes are judged only between two polls that both reached the repository.
    if (!snapshot.reachable || !previous?.reachable) {
      return pending;
    }

    const before = previous.pair?.replicationState ?? 'unpaired';
    const after = snapshot.pair?.replicationState ?? 'unpaired';
    if (REPLICATING.has(before) && !REPLICATING.has(after) && after !== 'unpaired') {
      this.#peerLost = true;
      add('impCdrPeerLost');
    }
    if (this.#peerLost && REPLICATING.has(after)) {
      this.#peerLost = false;
      add('impCdrPeerRegained');
    }
    if (after === 'unpaired') {
      this.#peerLost = false;
    }

    const lagHigh = after !== 'unpaired' && Number(snapshot.pair?.lagMs ?? 0) > this.#thresholds.replicationLagThresholdMs;
    if (lagHigh && !this.#lagHigh) {
      add('impCdrReplicationLagHigh');
    }
    this.#lagHigh = lagHigh;

    const versionBefore = previous.status?.softwareVersion ?? '';
    const versionAfter = snapshot.status?.softwareVersion ?? '';
    if (versionBefore && versionAfter && versionBefore !== versionAfter) {
      this.previousSoftwareVersion = versionBefore;
      add(compareVersions(versionAfter, versionBefore) > 0 ? 'impCdrFirmwareApplied' : 'impCdrFirmwareRolledBack');
    }

    // TODO: impCdrAnomalyDetected once the control socket reports anomalies.
    return pending;
  }

  /**
   * Returns the ids of feeds that entered the stale or failed state since the last reachable poll,
   * including feeds first seen in one of them (at agent start, or added and failed at once). A
   * change between stale and failed sends nothing; only a return to ok rearms the notification.
   */
  #staleFeedsEntered(snapshot: RepositorySnapshot): string[] {
    const entered: string[] = [];
    const listed = new Set<string>();
    for (const feed of snapshot.feeds) {
      const id = feed.definition?.id ?? '';
      listed.add(id);
      const state = feedState(feed, snapshot.lastSuccessMs);
      if ((state === 'stale' || state === 'failed') && !this.#staleFeeds.has(id)) {
        this.#staleFeeds.add(id);
        entered.push(id);
      }
      if (state === 'ok') {
        this.#staleFeeds.delete(id);
      }
    }
    // A feed that is removed and added again starts afresh.
    for (const id of this.#staleFeeds) {
      if (!listed.has(id)) {
        this.#staleFeeds.delete(id);
      }
    }
    return entered;
  }
}

function nodeState(snapshot: RepositorySnapshot): string {
  return snapshot.reachable ? (snapshot.status?.state ?? '') : 'unreachable';
}

/**
 * Compares dotted version numbers numerically, part by part ("0.10.0" > "0.9.1"); a pre-release or
 * build suffix after '-' or '+' is ignored.
 */
export function compareVersions(a: string, b: string): number {
  const parts = (version: string) => version.split(/[-+]/)[0]!.split('.').map((part) => Number.parseInt(part, 10) || 0);
  const left = parts(a);
  const right = parts(b);
  for (let position = 0; position < Math.max(left.length, right.length); position++) {
    const difference = (left[position] ?? 0) - (right[position] ?? 0);
    if (difference !== 0) {
      return Math.sign(difference);
    }
  }
  return 0;
}
