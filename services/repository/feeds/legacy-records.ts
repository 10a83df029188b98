/**
 * Converts feed records written before feeds replicated: definitions and versions without a hybrid
 * logical clock timestamp, chunks keyed by a per-node version number instead of the content's
 * SHA-256, and a status that held the last success. The converted records are written through the
 * replication log, so the peer receives them.
 */

import type { Logger } from '../../common/logger.js';
import type { HybridLogicalClock } from '../hlc.js';
import type { FeedRecordOperation, IndexStore } from '../store.js';
import type { FeedDefinition } from './definition.js';
import {
  chunkPrefix,
  chunkRecords,
  definitionKey,
  refreshKey,
  statusKey,
  versionKey,
  type FeedVersion,
  type RefreshRecord,
  type StoredDefinition,
} from './feed-records.js';

const SEP = '\u0000';

/** A status as stored before the last success moved to the replicated refresh record. */
interface LegacyStatus {
  lastAttemptMs?: number;
  lastSuccessMs?: number;
  lastUnchangedMs?: number;
}

/** Converts every legacy feed of `store` and returns the ids converted. */
export async function convertLegacyFeeds(store: IndexStore, clock: HybridLogicalClock, log: Logger): Promise<string[]> {
  const converted: string[] = [];
  for (const [key, value] of await store.listFeedRecords(`d${SEP}`)) {
    if ((value as { hlc?: unknown }).hlc !== undefined) {
      continue;
    }
    const id = key.slice(2);
    await convertFeed(store, clock, id, value as Omit<FeedDefinition, 'caPem'> & { caPem?: string });
    converted.push(id);
  }
  if (converted.length > 0) {
    log.info({ feeds: converted }, 'converted feed records to the replicated layout');
  }
  return converted;
}

async function convertFeed(store: IndexStore, clock: HybridLogicalClock, id: string, legacy: Omit<FeedDefinition, 'caPem'> & { caPem?: string }): Promise<void> {
  const definition: StoredDefinition = { ...legacy, caPem: legacy.caPem ?? '', hlc: clock.tick() };
  const replicated: [string, unknown][] = [[definitionKey(id), definition]];
  const local: FeedRecordOperation[] = [];

  const oldVersion = (await store.getFeedRecord(versionKey(id))) as (Omit<FeedVersion, 'hlc' | 'definitionHlc'> & { hlc?: unknown }) | undefined;
  // Legacy chunk keys end in an 8-digit version number and a 6-digit index.
  const oldChunkKeys = (await store.listFeedKeys(chunkPrefix(id))).filter((key) => /^[0-9a-f]{8}\u0000[0-9a-f]{6}$/.test(key.slice(chunkPrefix(id).length)));
  local.push(...oldChunkKeys.map((key): FeedRecordOperation => ({ type: 'del', key })));

  if (oldVersion && oldVersion.hlc === undefined) {
    const hlc = clock.tick();
    const parts: Buffer[] = [];
    for (let index = 0; index < oldVersion.chunks; index += 1) {
      const chunk = (await store.getFeedRecord(legacyChunkKey(id, oldVersion.version, index))) as string | undefined;
      if (chunk === undefined) {
        break;
      }
      parts.push(Buffer.from(chunk, 'base64'));
    }
    // A version whose bytes are incomplete is dropped, and the next refresh imports the feed again.
    if (parts.length === oldVersion.chunks) {
      const version: FeedVersion = { ...oldVersion, hlc, definitionHlc: definition.hlc };
      replicated.push(...chunkRecords(id, version.sha256, Buffer.concat(parts), hlc), [versionKey(id), version]);
    } else {
      local.push({ type: 'del', key: versionKey(id) });
    }

    const status = (await store.getFeedRecord(statusKey(id))) as LegacyStatus | undefined;
    if (status?.lastSuccessMs) {
      const refresh: RefreshRecord = {
        atMs: status.lastSuccessMs,
        changed: status.lastUnchangedMs !== status.lastSuccessMs,
        sha256: oldVersion.sha256,
        hlc,
        definitionHlc: definition.hlc,
      };
      replicated.push([refreshKey(id), refresh]);
    }
  }

  await store.transactFeedRecords(async () => ({ replicated, local }));
}

/** Returns the key under which the layout before replication stored chunk `index` of a version. */
export function legacyChunkKey(id: string, version: number, index: number): string {
  return `${chunkPrefix(id)}${version.toString(16).padStart(8, '0')}${SEP}${index.toString(16).padStart(6, '0')}`;
}
