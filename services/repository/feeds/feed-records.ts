/**
 * The feed records under the index's `f` prefix, their keys and their stored shapes. Keys here omit
 * the `f NUL` that IndexStore adds.
 *
 *     d NUL feedId                        -> StoredDefinition: the definition, or a tombstone    replicates
 *     v NUL feedId                        -> FeedVersion: the version in force                    replicates
 *     r NUL feedId                        -> RefreshRecord: the last successful refresh          replicates
 *     b NUL feedId NUL sha256 NUL chunk   -> StoredChunk: raw bytes of the version with that hash replicates
 *     s NUL feedId                        -> LocalStatus: this node's last attempt and error     local
 *
 * Definitions, versions and refresh records are last-writer-wins registers ordered by their `hlc`
 * (see store-merge.ts). A version's chunks are keyed by its content, so two nodes that fetched the
 * same bytes write the same keys, and nodes that fetched different bytes never overwrite each other.
 */

import type { HlcTimestamp } from '../hlc.js';
import type { FeedDefinition } from './definition.js';
import type { LineError } from './parse.js';

const SEP = '\u0000';

/** Size of one stored chunk of a version's raw bytes. */
export const CHUNK_BYTES = 512 * 1024;

/** A feed's definition with the time it was added, or the tombstone that `feeds remove` leaves. */
export type StoredDefinition = (FeedDefinition & { removed?: false; hlc: HlcTimestamp }) | { id: string; removed: true; hlc: HlcTimestamp };

/** Metadata of the version in force. */
export interface FeedVersion {
  /** Number shown to operators: one more than the version it replaced. */
  version: number;
  importedMs: number;
  bytes: number;
  chunks: number;
  /** Hex SHA-256 of the raw bytes, which the chunk keys contain. */
  sha256: string;
  etag?: string;
  lastModified?: string;
  entries: number;
  exclusions: number;
  badLines: number;
  lineErrors: LineError[];
  encoding: string;
  /** When and on which node the version was imported. */
  hlc: HlcTimestamp;
  /** `hlc` of the definition it was fetched for. A version of another definition is not loaded. */
  definitionHlc: HlcTimestamp;
}

/** The last refresh that succeeded on either node, changed or not. */
export interface RefreshRecord {
  /** Start of that refresh, Unix ms, by the clock of the node that made it. */
  atMs: number;
  /** False when the source was unchanged (304, or the same bytes). */
  changed: boolean;
  sha256: string;
  /** When and on which node (`hlc.nodeId`) the refresh ended. */
  hlc: HlcTimestamp;
  definitionHlc: HlcTimestamp;
}

/** One chunk of a version's raw bytes. */
export interface StoredChunk {
  /** `hlc` of the version that wrote it last. */
  hlc: HlcTimestamp;
  /** The bytes, base64. */
  data: string;
}

/** This node's own refresh outcome, which does not replicate. */
export interface LocalStatus {
  /** Start of this node's last fetch, Unix ms, or 0 when it never fetched. */
  lastAttemptMs: number;
  lastError: { code: string; message: string; atMs: number } | undefined;
}

export function definitionKey(id: string): string {
  return `d${SEP}${id}`;
}

export function versionKey(id: string): string {
  return `v${SEP}${id}`;
}

export function refreshKey(id: string): string {
  return `r${SEP}${id}`;
}

export function statusKey(id: string): string {
  return `s${SEP}${id}`;
}

/** Prefix of every chunk of feed `id`. */
export function chunkPrefix(id: string): string {
  return `b${SEP}${id}${SEP}`;
}

export function chunkKey(id: string, sha256: string, index: number): string {
  return `${chunkPrefix(id)}${sha256}${SEP}${index.toString(16).padStart(6, '0')}`;
}

/** Returns the SHA-256 that a chunk key (from `chunkKey`) contains. */
export function chunkSha(key: string, id: string): string {
  const rest = key.slice(chunkPrefix(id).length);
  return rest.slice(0, rest.indexOf(SEP));
}

/**
 * Returns the feed id of a replicated feed key as the replication log carries it (with the `f NUL`
 * prefix), or undefined for any other key.
 */
export function feedIdOfIndexKey(key: string): string | undefined {
  if (!key.startsWith(`f${SEP}`) || key[3] !== SEP) {
    return undefined;
  }
  const end = key.indexOf(SEP, 4);
  return end < 0 ? key.slice(4) : key.slice(4, end);
}

/** Splits `bytes` into the chunk records of a version. */
export function chunkRecords(id: string, sha256: string, bytes: Buffer, hlc: HlcTimestamp): [string, StoredChunk][] {
  const records: [string, StoredChunk][] = [];
  for (let index = 0; index * CHUNK_BYTES < bytes.length; index += 1) {
    const data = bytes.subarray(index * CHUNK_BYTES, (index + 1) * CHUNK_BYTES).toString('base64');
    records.push([chunkKey(id, sha256, index), { hlc, data }]);
  }
  return records;
}
