/**
 * Weighting of feed listings in an object's reputation. Each listing adds the policy's weight for the
 * feed's category (`listingWeights`) to the score computed from the counters.
 */

import { verdictOf, type PolicyDocument, type ReputationResult } from '../reputation.js';
import type { FeedListing } from './feed-manager.js';

/**
 * Returns `result` with the listings' weights added to its score, clamped to -100..100. When the
 * listings change the score, the verdict follows the new score even below `minMessages`, because a
 * listing is evidence on its own.
 */
export function applyListings(policy: PolicyDocument, result: ReputationResult, listings: readonly FeedListing[]): ReputationResult {
  const weighted = listings
    .filter((listing) => listing.listed)
    .map((listing) => ({ listing, points: policy.listingWeights?.[listing.category] ?? 0 }))
    .filter(({ points }) => points !== 0);
  if (weighted.length === 0) {
    return result;
  }

  const total = weighted.reduce((sum, { points }) => sum + points, 0);
  const score = Math.max(-100, Math.min(100, Math.round(result.score + total)));
  const verdict = verdictOf(policy, score);
  const reasons = [
    ...weighted.map(({ listing, points }) => `listed by ${listing.source} (${listing.category} ${points > 0 ? '+' : ''}${points})`),
    ...result.reasons,
  ];
  return { ...result, score, verdict, reasons, ttlSeconds: policy.ttlSeconds[verdict] };
}
