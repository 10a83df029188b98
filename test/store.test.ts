import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { COUNTER_FIELDS } from '../modules/protocol/counters.js';
import { createLogger } from '../services/common/logger.js';
import { REPLAY_WINDOW_SIZE, ReplayWindow } from '../services/repository/replay-window.js';
import { IndexStore, type PreparedObservation } from '../services/repository/store.js';

const log = createLogger('test', 'silent');
const HOUR_MS = 3_600_000;

function messages(count: number): number[] {
  const vector = new Array<number>(COUNTER_FIELDS.length).fill(0);
  vector[COUNTER_FIELDS.indexOf('messages')] = count;
  return vector;
}

function ip(key: string, count: number, intervalStartMs: number): PreparedObservation {
  return { kind: 'ip', key, parents: [{ kind: 'network', key: '192.0.2.0/24' }], intervalStartMs, vector: messages(count) };
}

async function withStore(run: (store: IndexStore, location: string) => Promise<void>): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-store-'));
  const store = await IndexStore.open({ location: join(dir, 'index'), nodeId: 'node-test', bucketSeconds: 3600, log });
  try {
    await run(store, join(dir, 'index'));
  } finally {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

function sumMessages(buckets: { vector: number[] }[]): number {
  return buckets.reduce((sum, bucket) => sum + bucket.vector[COUNTER_FIELDS.indexOf('messages')]!, 0);
}

test('concurrent batches are summed exactly', async (t) => {
  await withStore(async (store) => {
    const now = Date.now();
    // 200 batches from 4 IMPs submitted at once end up in a few group commits.
    const jobs = Array.from({ length: 200 }, (_, i) => store.observe(`imp-${i % 4}`, Math.floor(i / 4) + 1, [ip('192.0.2.1', i + 1, now)]));
    const outcomes = await Promise.all(jobs);

    t.true(outcomes.every((outcome) => !outcome.duplicate));
    const { buckets } = await store.readObject('ip', '192.0.2.1', 0);
    t.is(sumMessages(buckets), (200 * 201) / 2);
    const network = await store.readObject('network', '192.0.2.0/24', 0);
    t.is(sumMessages(network.buckets), (200 * 201) / 2);
    t.deepEqual(store.objectCounts(), { ip: 1, network: 1, domain: 0, user: 0 });
  });
});

test('observations land in their hour buckets', async (t) => {
  await withStore(async (store) => {
    const hour = Math.floor(Date.now() / HOUR_MS) * HOUR_MS;
    await store.observe('imp', 1, [ip('192.0.2.2', 3, hour + 10), ip('192.0.2.2', 4, hour + HOUR_MS - 1), ip('192.0.2.2', 5, hour - 1)]);

    const { buckets, record } = await store.readObject('ip', '192.0.2.2', 0);
    const byStart = new Map(buckets.map((bucket) => [bucket.startSeconds, bucket.vector[COUNTER_FIELDS.indexOf('messages')]]));
    t.is(byStart.get(hour / 1000), 7);
    t.is(byStart.get(hour / 1000 - 3600), 5);
    t.is(record?.firstSeenMs, hour - 1);
    t.is(record?.lastSeenMs, hour + HOUR_MS - 1);
  });
});

test('purge deletes only buckets before the cutoff', async (t) => {
  await withStore(async (store) => {
    const now = Date.now();
    await store.observe('imp', 1, [ip('192.0.2.3', 1, now - 40 * 24 * HOUR_MS), ip('192.0.2.3', 2, now - 2 * HOUR_MS), ip('192.0.2.3', 4, now)]);

    const cutoffSeconds = Math.floor((now - 30 * 24 * HOUR_MS) / 1000);
    const deleted = await store.purgeBuckets(cutoffSeconds, 1);
    // The old bucket of the address and of its network.
    t.is(deleted, 2);
    const { buckets } = await store.readObject('ip', '192.0.2.3', 0);
    t.is(sumMessages(buckets), 6);
    t.is(await store.purgeBuckets(cutoffSeconds), 0);
  });
});

test('replay window survives a reopen', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-store-'));
  try {
    const location = join(dir, 'index');
    let store = await IndexStore.open({ location, nodeId: 'node-test', bucketSeconds: 3600, log });
    await store.observe('imp', 10, [ip('192.0.2.4', 1, Date.now())]);
    await store.observe('imp', 8, [ip('192.0.2.4', 1, Date.now())]);
    await store.close();

    store = await IndexStore.open({ location, nodeId: 'node-test', bucketSeconds: 3600, log });
    t.is(await store.lastSequence('imp'), 10);
    t.true((await store.observe('imp', 10, [ip('192.0.2.4', 1, Date.now())])).duplicate);
    t.true((await store.observe('imp', 8, [ip('192.0.2.4', 1, Date.now())])).duplicate);
    t.false((await store.observe('imp', 9, [ip('192.0.2.4', 1, Date.now())])).duplicate);
    t.is(sumMessages((await store.readObject('ip', '192.0.2.4', 0)).buckets), 3);
    await store.close();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('second open of one index is ERR_INDEX_LOCKED', async (t) => {
  await withStore(async (_store, location) => {
    const error = await t.throwsAsync(IndexStore.open({ location, nodeId: 'other', bucketSeconds: 3600, log }));
    t.is((error as { code?: string }).code, 'ERR_INDEX_LOCKED');
    t.regex(error!.message, /another process holds the index/);
  });
});

test('replay window edges', (t) => {
  const window = new ReplayWindow();
  t.is(window.check(1), 'new');
  window.mark(1);
  t.is(window.check(1), 'duplicate');

  window.mark(1 + REPLAY_WINDOW_SIZE);
  t.is(window.check(1), 'too-old');
  t.is(window.check(2), 'new');
  t.is(window.check(1 + REPLAY_WINDOW_SIZE), 'duplicate');

  window.mark(2);
  t.is(window.check(2), 'duplicate');
  window.mark(2 + REPLAY_WINDOW_SIZE);
  // Sequence 2 is now exactly one past the window.
  t.is(window.check(2), 'too-old');
  t.is(window.check(1 + REPLAY_WINDOW_SIZE), 'duplicate');

  const restored = new ReplayWindow(window.toStored());
  t.is(restored.high, 2 + REPLAY_WINDOW_SIZE);
  t.is(restored.check(1 + REPLAY_WINDOW_SIZE), 'duplicate');
  t.is(restored.check(3), 'new');
});
