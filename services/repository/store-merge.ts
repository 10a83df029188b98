/**
 * Merge rules for replicated index values. Each rule is commutative, associative and idempotent, so two
 * nodes that apply each other's entries in any order, any number of times, reach the same values.
 *
 * - counter slot (`c`): element-wise maximum; a slot belongs to one node and only grows there
 * - object record (`o`): earliest first-seen, latest last-seen
 * - replay window (`s`): union of the applied sequences
 * - policy in force (`p NUL current`): the later hybrid logical clock timestamp, node id as tie-break
 * - policy history (`p NUL v NUL version`): the first value written; a version is never rewritten
 * - feed definition or tombstone (`f NUL d`), feed version in force (`f NUL v`) and last successful
 *   refresh (`f NUL r`): the later hybrid logical clock timestamp, as for the policy
 * - feed bytes chunk (`f NUL b`): the later timestamp. The key names the content (its SHA-256), so
 *   both values carry the same bytes and only the timestamp differs.
 *
 * A feed's status (`f NUL s`) is local: each node keeps its own last attempt and last error.
 */

import { compareHlc, type HlcTimestamp } from './hlc.js';
import { ReplayWindow, type StoredReplayWindow } from './replay-window.js';

/** Result of merging a remote value into the local one. */
export interface MergeResult {
  /** The value to store, or undefined when the local value already includes the remote one. */
  value: unknown;
  /** The remote value lost a last-writer-wins comparison against a later local value from another node. */
  conflict?: boolean;
}

const SEP = '\u0000';

/**
 * Key prefixes that replicate, in key order. Everything else (object counts, log, checkpoints, audit,
 * feed status) is local.
 */
export const REPLICATED_PREFIXES = [
  `c${SEP}`,
  `f${SEP}b${SEP}`,
  `f${SEP}d${SEP}`,
  `f${SEP}r${SEP}`,
  `f${SEP}v${SEP}`,
  `o${SEP}`,
  `p${SEP}`,
  `s${SEP}`,
] as const;

export function isReplicatedKey(key: string): boolean {
  return REPLICATED_PREFIXES.some((prefix) => key.startsWith(prefix));
}

/** Merges `remote` into `local` (undefined when the key is absent locally) by the rule of the key's prefix. */
export function mergeValue(key: string, local: unknown, remote: unknown): MergeResult {
  if (local === undefined) {
    return { value: remote };
  }

  switch (key[0]) {
    case 'c': {
      const localVector = local as number[];
      const remoteVector = remote as number[];
      const merged = localVector.map((value, index) => Math.max(value, remoteVector[index] ?? 0));
      return { value: merged.some((value, index) => value !== localVector[index]) ? merged : undefined };
    }

    case 'o': {
      const localRecord = local as { firstSeenMs: number; lastSeenMs: number };
      const remoteRecord = remote as { firstSeenMs: number; lastSeenMs: number };
      const merged = {
        firstSeenMs: Math.min(localRecord.firstSeenMs, remoteRecord.firstSeenMs),
        lastSeenMs: Math.max(localRecord.lastSeenMs, remoteRecord.lastSeenMs),
      };
      const changed = merged.firstSeenMs !== localRecord.firstSeenMs || merged.lastSeenMs !== localRecord.lastSeenMs;
      return { value: changed ? merged : undefined };
    }

    case 's': {
      const window = new ReplayWindow(local as StoredReplayWindow | number);
      const before = JSON.stringify(window.toStored());
      window.merge(new ReplayWindow(remote as StoredReplayWindow | number));
      const merged = window.toStored();
      return { value: JSON.stringify(merged) === before ? undefined : merged };
    }

    case 'p': {
      if (key.startsWith(`p${SEP}v${SEP}`)) {
        return { value: undefined };
      }
      return lastWriterWins(local, remote, true);
    }

    case 'f': {
      // Only definitions and versions are conflicts to audit. Refresh records and chunks of two nodes
      // that both fetched are expected to differ.
      const reportConflict = key.startsWith(`f${SEP}d${SEP}`) || key.startsWith(`f${SEP}v${SEP}`);
      return lastWriterWins(local, remote, reportConflict);
    }

    default:
      return { value: undefined };
  }
}

/**
 * Keeps the value with the later `hlc`. A value without one (written before replication carried it)
 * loses to any value with one, and a remote value without one never replaces the local value.
 */
function lastWriterWins(local: unknown, remote: unknown, reportConflict: boolean): MergeResult {
  const localStamp = (local as { hlc?: HlcTimestamp }).hlc;
  const remoteStamp = (remote as { hlc?: HlcTimestamp }).hlc;
  if (!remoteStamp) {
    return { value: undefined };
  }
  if (!localStamp || compareHlc(remoteStamp, localStamp) > 0) {
    return { value: remote };
  }
  const same = compareHlc(remoteStamp, localStamp) === 0;
  return { value: undefined, conflict: reportConflict && !same && remoteStamp.nodeId !== localStamp.nodeId };
}
