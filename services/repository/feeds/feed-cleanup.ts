/**
 * The rule by which a node deletes stored feed records locally. Deletions never replicate (the replication log
 * carries only puts), so each node decides for itself, after its own writes and after applying the
 * peer's, from the records it holds. The rules keep records that may still be in transit: chunks
 * newer than the version in force belong to a version that has not arrived yet.
 */

import { compareHlc, type HlcTimestamp } from '../hlc.js';
import type { FeedVersion, RefreshRecord, StoredDefinition } from './feed-records.js';

/** A stored chunk as the cleanup reads it. */
export interface ChunkInfo {
  key: string;
  sha256: string;
  hlc: HlcTimestamp;
}

/** The stored records of one feed. */
export interface FeedRecords {
  definition: StoredDefinition | undefined;
  version: FeedVersion | undefined;
  refresh: RefreshRecord | undefined;
  chunks: ChunkInfo[];
}

/** Keys (without the `f NUL` prefix) that the cleanup deletes, by kind of record. */
export interface CleanupPlan {
  version: boolean;
  refresh: boolean;
  chunks: string[];
}

/**
 * Decides what to delete:
 *
 * - Under a tombstone, the version and refresh record of every definition older than the tombstone
 *   go, with the chunks of that version and every chunk older than the tombstone. Records of a later
 *   definition (the same id added again) stay.
 * - Otherwise, chunks of another content than the version in force go when they are older than it:
 *   they belong to a version it replaced, or to one that lost to it.
 */
export function planCleanup(records: FeedRecords): CleanupPlan {
  const { definition, version, refresh, chunks } = records;

  if (definition?.removed) {
    const removedAt = definition.hlc;
    const dropVersion = version !== undefined && compareHlc(version.definitionHlc, removedAt) < 0;
    const dropRefresh = refresh !== undefined && compareHlc(refresh.definitionHlc, removedAt) < 0;
    const dropped = chunks.filter(
      (chunk) =>
        compareHlc(chunk.hlc, removedAt) < 0 || (dropVersion && chunk.sha256 === version.sha256 && compareHlc(chunk.hlc, version.hlc) <= 0),
    );
    return { version: dropVersion, refresh: dropRefresh, chunks: dropped.map((chunk) => chunk.key) };
  }

  if (!version) {
    return { version: false, refresh: false, chunks: [] };
  }
  const superseded = chunks.filter((chunk) => chunk.sha256 !== version.sha256 && compareHlc(chunk.hlc, version.hlc) < 0);
  return { version: false, refresh: false, chunks: superseded.map((chunk) => chunk.key) };
}
