/**
 * The refresh schedule of a feed in a pair: the node that fetches and the time. Both nodes compute the same preferred node from the
 * two node ids and the feed id. The preferred node refreshes when the feed is due. The other node
 * waits a grace period longer and refreshes only if no refresh has been recorded by then, which is the
 * case when the preferred node is down, cut off or failing.
 */

import { createHash } from 'node:crypto';

import type { FeedDefinition } from './definition.js';

/** The configured grace period of the node that is not preferred. */
export interface FallbackGrace {
  /** Minimum wait, in seconds. */
  seconds: number;
  /** Wait as a percentage of the refresh interval. */
  percent: number;
}

/**
 * Returns the node that fetches `feedId` when it is due. The first four bytes of the feed id's SHA-256,
 * as an unsigned big-endian integer, modulo 2 pick among the two node ids sorted in code unit order.
 * An unpaired node is always preferred.
 */
export function preferredNode(feedId: string, nodeId: string, peerNodeId: string | undefined): string {
  if (!peerNodeId || peerNodeId === nodeId) {
    return nodeId;
  }
  const nodes = [nodeId, peerNodeId].sort();
  const hash = createHash('sha256').update(feedId, 'utf8').digest();
  return nodes[hash.readUInt32BE(0) % 2]!;
}

/**
 * Returns how long, in milliseconds, the node that is not preferred waits after the feed is due: the
 * longest of `grace.seconds`, `grace.percent` of the refresh interval, and the feed's fetch timeout,
 * because the preferred node's fetch may take that long.
 */
export function fallbackGraceMs(definition: Pick<FeedDefinition, 'refreshSeconds' | 'timeoutMs'>, grace: FallbackGrace): number {
  return Math.max(grace.seconds * 1000, (definition.refreshSeconds * 1000 * grace.percent) / 100, definition.timeoutMs);
}

/** The facts a node plans a feed's next refresh from. Times are Unix ms. */
export interface ScheduleInput {
  refreshSeconds: number;
  /** When the definition was added (its HLC wall time), which is when the adding node fetched. */
  addedMs: number;
  /** Start of the last successful refresh on either node, or 0 when none. */
  lastSuccessMs: number;
  /** Start of this node's last fetch, or 0 when none. */
  lastAttemptMs: number;
  preferred: boolean;
  graceMs: number;
}

/**
 * Returns when this node refreshes the feed, in Unix ms, or undefined when the feed refreshes only on
 * request. The interval counts from the latest of the addition, the last success on either node and
 * this node's last attempt, so a failed attempt is retried one interval later.
 */
export function nextRefreshMs(input: ScheduleInput): number | undefined {
  if (input.refreshSeconds === 0) {
    return undefined;
  }
  const since = Math.max(input.addedMs, input.lastSuccessMs, input.lastAttemptMs);
  return since + input.refreshSeconds * 1000 + (input.preferred ? 0 : input.graceMs);
}
