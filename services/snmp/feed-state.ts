/**
 * The values of one impCdrFeedTable row, derived from a feed as the control socket's `feed_list`
 * reports it, and the rule that decides impCdrFeedState.
 */

import type { impcdr } from '../../modules/protocol/generated/messages.js';

/** impCdrFeedState as IMP-CDR-MIB enumerates it, in MIB order from 1. */
export const FEED_STATES = ['unknown', 'ok', 'stale', 'failed', 'disabled'] as const;

export type FeedStateName = (typeof FEED_STATES)[number];

/** One feed as impCdrFeedTable shows it. */
export interface FeedRow {
  /** Feed id, impCdrFeedName. */
  name: string;
  state: FeedStateName;
  /** Entries in the version in force. */
  entries: number;
  /** Start of the last successful refresh, in milliseconds since the epoch, or 0 when none succeeded. */
  lastSuccessMs: number;
  /** Whole seconds from the last successful refresh to the poll, or 0 when none succeeded. */
  ageSeconds: number;
}

/**
 * Decides the state of `feed` at `atMs`:
 *
 * - unknown: no refresh has ended yet.
 * - failed: the last refresh that ended failed, even while a retry runs.
 * - ok: the last refresh succeeded, and either the feed refreshes only on request (refresh 0) or its
 *   last success is at most `refresh_seconds` plus the grace period (`refresh_grace_ms`, rounded up
 *   to whole seconds) old.
 * - stale: the last refresh succeeded, but longer ago than that.
 *
 * A refresh in flight on this node is judged by the age at which it started. The repository starts
 * each refresh one interval after the previous one started, so a fetch of a few seconds does not make
 * the feed stale while it runs. The feed's `timeout_ms` bounds the fetch. On the node of a pair that
 * is not the feed's preferred node, the preferred node's fetch is not visible while it runs. That node
 * waits the grace period before it fetches itself, so the grace period covers both. The repository
 * has no disabled feeds, so disabled(5) is never returned.
 */
export function feedState(feed: impcdr.v1.IFeedInfo, atMs: number): FeedStateName {
  const lastAttemptMs = Number(feed.lastAttemptMs ?? 0);
  const lastSuccessMs = Number(feed.lastSuccessMs ?? 0);
  const refreshSeconds = Number(feed.definition?.refreshSeconds ?? 0);
  const graceSeconds = Math.ceil(Number(feed.refreshGraceMs ?? 0) / 1000);

  if (feed.lastErrorCode) {
    return 'failed';
  }
  if (lastSuccessMs === 0) {
    return 'unknown';
  }
  if (refreshSeconds === 0) {
    return 'ok';
  }

  // Without an error, an attempt later than the last success is a refresh that has not ended.
  const refreshRunning = lastAttemptMs > lastSuccessMs;
  const judgedAtMs = refreshRunning ? lastAttemptMs : atMs;
  return ageSeconds(lastSuccessMs, judgedAtMs) > refreshSeconds + graceSeconds ? 'stale' : 'ok';
}

/** Derives the impCdrFeedTable row of `feed` at `atMs`, the time of the poll that read it. */
export function feedRow(feed: impcdr.v1.IFeedInfo, atMs: number): FeedRow {
  const lastSuccessMs = Number(feed.lastSuccessMs ?? 0);
  return {
    name: feed.definition?.id ?? '',
    state: feedState(feed, atMs),
    entries: Number(feed.entries ?? 0),
    lastSuccessMs,
    ageSeconds: lastSuccessMs === 0 ? 0 : ageSeconds(lastSuccessMs, atMs),
  };
}

function ageSeconds(sinceMs: number, atMs: number): number {
  return Math.max(0, Math.floor((atMs - sinceMs) / 1000));
}
