import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { createLogger } from '../services/common/logger.js';
import type { HlcTimestamp } from '../services/repository/hlc.js';
import { HybridLogicalClock } from '../services/repository/hlc.js';
import { planCleanup, type ChunkInfo } from '../services/repository/feeds/feed-cleanup.js';
import { chunkKey, chunkRecords, CHUNK_BYTES, type FeedVersion, type RefreshRecord, type StoredDefinition } from '../services/repository/feeds/feed-records.js';
import { convertLegacyFeeds, legacyChunkKey } from '../services/repository/feeds/legacy-records.js';
import { fallbackGraceMs, nextRefreshMs, preferredNode } from '../services/repository/feeds/refresh-schedule.js';
import { IndexStore } from '../services/repository/store.js';
import { isReplicatedKey, mergeValue } from '../services/repository/store-merge.js';

const log = createLogger('test', 'silent');
const SEP = '\u0000';

function stamp(wallMs: number, nodeId: string, counter = 0): HlcTimestamp {
  return { wallMs, counter, nodeId };
}

function definition(hlc: HlcTimestamp, source = '/srv/drop.txt'): StoredDefinition {
  return { id: 'drop', source, format: 'iplist', zone: '', category: 'block', refreshSeconds: 3600, maxBytes: 1024, timeoutMs: 1000, caPem: '', hlc };
}

function tombstone(hlc: HlcTimestamp): StoredDefinition {
  return { id: 'drop', removed: true, hlc };
}

function version(sha256: string, hlc: HlcTimestamp, definitionHlc: HlcTimestamp): FeedVersion {
  return { version: 1, importedMs: hlc.wallMs, bytes: 10, chunks: 1, sha256, entries: 1, exclusions: 0, badLines: 0, lineErrors: [], encoding: 'utf-8', hlc, definitionHlc };
}

/** Applies `values` to an empty key one after the other, as replication would, and returns the result. */
function applyInOrder(key: string, values: unknown[]): unknown {
  let stored: unknown;
  for (const value of values) {
    const merged = mergeValue(key, stored, value);
    if (merged.value !== undefined) {
      stored = merged.value;
    }
  }
  return stored;
}

function permutations<T>(items: T[]): T[][] {
  if (items.length <= 1) {
    return [items];
  }
  return items.flatMap((item, index) => permutations([...items.slice(0, index), ...items.slice(index + 1)]).map((rest) => [item, ...rest]));
}

const DEFINITION_KEY = `f${SEP}d${SEP}drop`;

test('feed keys replicate except status', (t) => {
  t.true(isReplicatedKey(`f${SEP}d${SEP}drop`));
  t.true(isReplicatedKey(`f${SEP}v${SEP}drop`));
  t.true(isReplicatedKey(`f${SEP}r${SEP}drop`));
  t.true(isReplicatedKey(chunkKeyWithPrefix('drop', 'ab', 0)));
  t.false(isReplicatedKey(`f${SEP}s${SEP}drop`));
  t.false(isReplicatedKey(`f${SEP}x${SEP}drop`));
  t.true(isReplicatedKey(`c${SEP}ip${SEP}192.0.2.1${SEP}0000000000${SEP}node-a`));
  t.false(isReplicatedKey(`l${SEP}0000000000000001`));
});

function chunkKeyWithPrefix(id: string, sha256: string, index: number): string {
  return `f${SEP}${chunkKey(id, sha256, index)}`;
}

test('definition merge ignores order', (t) => {
  const values = [definition(stamp(100, 'node-a')), tombstone(stamp(200, 'node-b')), definition(stamp(300, 'node-a'), '/srv/drop-v2.txt'), definition(stamp(300, 'node-b'))];
  const results = permutations(values).map((order) => applyInOrder(DEFINITION_KEY, order));
  for (const result of results) {
    t.deepEqual(result, values[3], 'the latest timestamp wins, node id breaking the tie');
  }
});

test('definition merge is idempotent', (t) => {
  const stored = definition(stamp(100, 'node-a'));
  t.is(mergeValue(DEFINITION_KEY, stored, structuredClone(stored)).value, undefined);
  t.false(mergeValue(DEFINITION_KEY, stored, structuredClone(stored)).conflict ?? false);
});

test('tombstone against add either order', (t) => {
  const added = definition(stamp(100, 'node-a'));
  const removed = tombstone(stamp(200, 'node-b'));
  const addedAgain = definition(stamp(300, 'node-a'), '/srv/other.txt');

  t.deepEqual(applyInOrder(DEFINITION_KEY, [added, removed]), removed);
  t.deepEqual(applyInOrder(DEFINITION_KEY, [removed, added]), removed, 'an older add never revives a removed feed');
  t.deepEqual(applyInOrder(DEFINITION_KEY, [removed, addedAgain]), addedAgain);
  t.deepEqual(applyInOrder(DEFINITION_KEY, [addedAgain, removed]), addedAgain, 'a later add wins over the tombstone');
  t.true(mergeValue(DEFINITION_KEY, addedAgain, removed).conflict, 'the losing tombstone is a conflict to audit');
});

test('version and refresh merge ignore order', (t) => {
  const definitionHlc = stamp(50, 'node-a');
  const versions = [version('aa', stamp(100, 'node-a'), definitionHlc), version('bb', stamp(100, 'node-b'), definitionHlc), version('cc', stamp(90, 'node-b', 7), definitionHlc)];
  for (const order of permutations(versions)) {
    t.deepEqual(applyInOrder(`f${SEP}v${SEP}drop`, order), versions[1]);
  }
  t.true(mergeValue(`f${SEP}v${SEP}drop`, versions[1], versions[0]).conflict, 'a lost version of the other node is audited');

  const refreshes: RefreshRecord[] = [
    { atMs: 100, changed: true, sha256: 'aa', hlc: stamp(110, 'node-a'), definitionHlc },
    { atMs: 200, changed: false, sha256: 'aa', hlc: stamp(210, 'node-b'), definitionHlc },
  ];
  for (const order of permutations(refreshes)) {
    t.deepEqual(applyInOrder(`f${SEP}r${SEP}drop`, order), refreshes[1]);
  }
  t.falsy(mergeValue(`f${SEP}r${SEP}drop`, refreshes[1], refreshes[0]).conflict, 'refresh records are not audited');
});

test('chunk merge keeps later timestamp', (t) => {
  const key = chunkKeyWithPrefix('drop', 'aa', 0);
  const older = { hlc: stamp(100, 'node-a'), data: 'MTkyLjAuMi4xCg==' };
  const newer = { hlc: stamp(200, 'node-b'), data: 'MTkyLjAuMi4xCg==' };
  t.deepEqual(applyInOrder(key, [older, newer]), newer);
  t.deepEqual(applyInOrder(key, [newer, older]), newer);
  t.deepEqual(applyInOrder(key, [newer, newer, older, newer]), newer);
  t.falsy(mergeValue(key, newer, older).conflict);
});

test('definition without timestamp loses', (t) => {
  const legacy = { id: 'drop', source: '/srv/drop.txt' };
  const current = definition(stamp(1, 'node-b'));
  t.deepEqual(mergeValue(DEFINITION_KEY, legacy, current).value, current);
  t.is(mergeValue(DEFINITION_KEY, current, legacy).value, undefined);
});

test('cleanup drops superseded chunks only', (t) => {
  const definitionHlc = stamp(10, 'node-a');
  const inForce = version('bb', stamp(200, 'node-a'), definitionHlc);
  const chunks: ChunkInfo[] = [
    { key: 'b-old', sha256: 'aa', hlc: stamp(100, 'node-a') },
    { key: 'b-force', sha256: 'bb', hlc: stamp(150, 'node-b') },
    { key: 'b-transit', sha256: 'cc', hlc: stamp(300, 'node-b') },
    { key: 'b-lost', sha256: 'dd', hlc: stamp(200, 'node-0') },
  ];
  const plan = planCleanup({ definition: definition(definitionHlc), version: inForce, refresh: undefined, chunks });
  t.deepEqual(plan.chunks, ['b-old', 'b-lost']);
  t.false(plan.version);
  t.false(plan.refresh);

  const noVersion = planCleanup({ definition: definition(definitionHlc), version: undefined, refresh: undefined, chunks });
  t.deepEqual(noVersion.chunks, [], 'without a version in force every chunk may still be needed');
});

test('cleanup under tombstone keeps later add', (t) => {
  const firstAdd = stamp(10, 'node-a');
  const removed = tombstone(stamp(500, 'node-b'));
  const partitionVersion = version('aa', stamp(600, 'node-a'), firstAdd);
  const refresh: RefreshRecord = { atMs: 600, changed: true, sha256: 'aa', hlc: stamp(600, 'node-a'), definitionHlc: firstAdd };
  const chunks: ChunkInfo[] = [
    { key: 'b-before', sha256: 'zz', hlc: stamp(400, 'node-a') },
    { key: 'b-partition', sha256: 'aa', hlc: stamp(600, 'node-a') },
    { key: 'b-readded', sha256: 'cc', hlc: stamp(700, 'node-b') },
  ];
  const plan = planCleanup({ definition: removed, version: partitionVersion, refresh, chunks });
  t.true(plan.version, 'a version of a definition older than the tombstone goes');
  t.true(plan.refresh);
  t.deepEqual(plan.chunks, ['b-before', 'b-partition']);

  const readdedVersion = version('cc', stamp(700, 'node-b'), stamp(650, 'node-b'));
  const kept = planCleanup({ definition: removed, version: readdedVersion, refresh: undefined, chunks: [chunks[2]!] });
  t.false(kept.version, 'the version of a later add is in transit');
  t.deepEqual(kept.chunks, []);
});

test('preferred node agrees on both nodes', (t) => {
  const ids = Array.from({ length: 200 }, (_, index) => `feed-${index}`);
  const fromA = ids.map((id) => preferredNode(id, 'node-a', 'node-b'));
  const fromB = ids.map((id) => preferredNode(id, 'node-b', 'node-a'));
  t.deepEqual(fromA, fromB);
  const onA = fromA.filter((node) => node === 'node-a').length;
  t.true(onA > 50 && onA < 150, `node-a is preferred for ${onA} of 200 feeds`);
  t.true(fromA.every((node) => node === 'node-a' || node === 'node-b'));
  t.is(preferredNode('feed-1', 'node-a', undefined), 'node-a', 'an unpaired node fetches everything');
});

test('grace and due times', (t) => {
  t.is(fallbackGraceMs({ refreshSeconds: 3600, timeoutMs: 30_000 }, { seconds: 30, percent: 10 }), 360_000);
  t.is(fallbackGraceMs({ refreshSeconds: 60, timeoutMs: 30_000 }, { seconds: 30, percent: 10 }), 30_000);
  t.is(fallbackGraceMs({ refreshSeconds: 60, timeoutMs: 45_000 }, { seconds: 30, percent: 10 }), 45_000, 'the fetch timeout is the floor');
  t.is(fallbackGraceMs({ refreshSeconds: 60, timeoutMs: 100 }, { seconds: 0, percent: 0 }), 100);

  const base = { refreshSeconds: 60, addedMs: 1_000, lastSuccessMs: 0, lastAttemptMs: 0, graceMs: 5_000 };
  t.is(nextRefreshMs({ ...base, preferred: true }), 61_000);
  t.is(nextRefreshMs({ ...base, preferred: false }), 66_000);
  t.is(nextRefreshMs({ ...base, lastSuccessMs: 70_000, preferred: false }), 135_000, 'a refresh by the peer moves the due time');
  t.is(nextRefreshMs({ ...base, lastAttemptMs: 80_000, lastSuccessMs: 70_000, preferred: true }), 140_000, 'a failed attempt is retried one interval later');
  t.is(nextRefreshMs({ ...base, refreshSeconds: 0, preferred: true }), undefined);
});

async function withStores(run: (a: IndexStore, b: IndexStore) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-feed-merge-'));
  const a = await IndexStore.open({ location: join(dir, 'a'), nodeId: 'node-a', bucketSeconds: 3600, log });
  const b = await IndexStore.open({ location: join(dir, 'b'), nodeId: 'node-b', bucketSeconds: 3600, log });
  try {
    await run(a, b);
  } finally {
    await a.close();
    await b.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

test('feed log puts chunks before version', async (t) => {
  await withStores(async (a, b) => {
    const hlc = stamp(1000, 'node-a');
    const bytes = Buffer.alloc(CHUNK_BYTES * 2 + 10, 0x41);
    const records: [string, unknown][] = [
      ...chunkRecords('drop', 'ab'.repeat(32), bytes, hlc),
      [`v${SEP}drop`, version('ab'.repeat(32), hlc, stamp(900, 'node-a'))],
      [`d${SEP}drop`, definition(stamp(900, 'node-a'))],
    ];
    const written = await a.transactFeedRecords(async () => ({ replicated: records, local: [{ type: 'put', key: `s${SEP}drop`, value: { lastAttemptMs: 5, lastError: undefined } }] }));
    t.is(written.size, 5);

    const { entries } = await a.readLog(0, 100);
    t.is(entries.length, 4, 'three chunk entries and one entry with the rest');
    t.deepEqual(
      entries.map((entry) => entry.puts.map(([key]) => key.slice(0, 4))),
      [[`f${SEP}b${SEP}`], [`f${SEP}b${SEP}`], [`f${SEP}b${SEP}`], [`f${SEP}v${SEP}`, `f${SEP}d${SEP}`]],
    );
    t.false(entries.some((entry) => entry.puts.some(([key]) => key.startsWith(`f${SEP}s${SEP}`))), 'the status stays local');

    const budgeted = await a.readLog(0, 100, 1);
    t.is(budgeted.entries.length, 1, 'a byte budget still returns one entry');

    // Writing the same records again changes nothing and logs nothing.
    t.is((await a.transactFeedRecords(async () => ({ replicated: records, local: [] }))).size, 0);
    t.is(a.logHead, 4);

    // The peer applies the entries in reverse order and twice, and ends with the same records.
    const puts = entries.flatMap((entry) => entry.puts);
    const first = await b.applyRemote('node-a', [...puts].reverse());
    t.deepEqual([...first.feedIds], ['drop']);
    const again = await b.applyRemote('node-a', puts);
    t.is(again.feedIds.size, 0, 'applying again changes nothing');
    for (const [key] of puts) {
      t.deepEqual(await b.getFeedRecord(key.slice(2)), await a.getFeedRecord(key.slice(2)), key.slice(0, 4));
    }
    t.is(await b.getFeedRecord(`s${SEP}drop`), undefined);

    const page = await a.snapshotPage('', 100);
    const snapshotKeys = page.pairs.map(([key]) => key);
    t.true(snapshotKeys.includes(`f${SEP}v${SEP}drop`));
    t.true(snapshotKeys.includes(`f${SEP}d${SEP}drop`));
    t.is(snapshotKeys.filter((key) => key.startsWith(`f${SEP}b${SEP}`)).length, 3);
    t.false(snapshotKeys.includes(`f${SEP}s${SEP}drop`));
    t.true(snapshotKeys.indexOf(`f${SEP}v${SEP}drop`) > snapshotKeys.findIndex((key) => key.startsWith(`f${SEP}b${SEP}`)), 'chunks come before the version');

    const small = await a.snapshotPage('', 100, 10);
    t.is(small.pairs.length, 1);
    t.false(small.done);
  });
});

test('older local version loses in transaction', async (t) => {
  await withStores(async (a) => {
    const newer = version('bb', stamp(2000, 'node-b'), stamp(1, 'node-a'));
    const older = version('aa', stamp(1000, 'node-a'), stamp(1, 'node-a'));
    await a.applyRemote('node-b', [[`f${SEP}v${SEP}drop`, newer]]);
    const written = await a.transactFeedRecords(async () => ({ replicated: [[`v${SEP}drop`, older]], local: [] }));
    t.is(written.size, 0);
    t.deepEqual(await a.getFeedRecord(`v${SEP}drop`), newer);
  });
});

test('legacy feed records converted', async (t) => {
  await withStores(async (a) => {
    const bytes = Buffer.from('192.0.2.1\n192.0.2.2\n');
    const sha256 = 'c0ffee';
    const legacyDefinition = { id: 'drop', source: '/srv/drop.txt', format: 'iplist', zone: '', category: 'block', refreshSeconds: 3600, maxBytes: 1024, timeoutMs: 1000 };
    const legacyVersion = { version: 3, importedMs: 5, bytes: bytes.length, chunks: 1, sha256, entries: 2, exclusions: 0, badLines: 0, lineErrors: [], encoding: 'utf-8' };
    await a.transactFeedRecords(async () => ({
      replicated: [],
      local: [
        { type: 'put', key: `d${SEP}drop`, value: legacyDefinition },
        { type: 'put', key: `v${SEP}drop`, value: legacyVersion },
        { type: 'put', key: legacyChunkKey('drop', 3, 0), value: bytes.toString('base64') },
        { type: 'put', key: `s${SEP}drop`, value: { lastAttemptMs: 9, lastSuccessMs: 8, lastUnchangedMs: 8, lastError: undefined } },
      ],
    }));

    const clock = new HybridLogicalClock('node-a');
    t.deepEqual(await convertLegacyFeeds(a, clock, log), ['drop']);
    const converted = (await a.getFeedRecord(`d${SEP}drop`)) as StoredDefinition;
    t.is(converted.hlc.nodeId, 'node-a');
    t.is((converted as { caPem: string }).caPem, '');
    const convertedVersion = (await a.getFeedRecord(`v${SEP}drop`)) as FeedVersion;
    t.deepEqual(convertedVersion.definitionHlc, converted.hlc);
    t.is(convertedVersion.version, 3);
    t.deepEqual(await a.getFeedRecord(legacyChunkKey('drop', 3, 0)), undefined);
    const chunk = (await a.getFeedRecord(chunkKey('drop', sha256, 0))) as { data: string };
    t.is(Buffer.from(chunk.data, 'base64').toString(), bytes.toString());
    const refresh = (await a.getFeedRecord(`r${SEP}drop`)) as RefreshRecord;
    t.is(refresh.atMs, 8);
    t.false(refresh.changed);
    t.true((await a.readLog(0, 10)).entries.length > 0, 'the converted records are logged for the peer');
    t.deepEqual(await convertLegacyFeeds(a, clock, log), [], 'a second run finds nothing to convert');
  });
});
