/**
 * Conversion between feed views and control protocol messages.
 */

import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import type { CdrConfig } from '../../common/config-schema.js';
import type { FeedDefinition } from './definition.js';
import type { FeedView } from './feed-manager.js';

export function feedToWire(feed: FeedView): impcdr.v1.IFeedInfo {
  const { definition, version, status } = feed;
  return {
    definition,
    version: version?.version ?? 0,
    importedMs: version?.importedMs ?? 0,
    entries: version?.entries ?? 0,
    exclusions: version?.exclusions ?? 0,
    badLines: version?.badLines ?? 0,
    lineErrors: version?.lineErrors ?? [],
    bytes: version?.bytes ?? 0,
    sha256: version?.sha256 ?? '',
    lastAttemptMs: status.lastAttemptMs,
    lastSuccessMs: status.lastSuccessMs,
    lastErrorCode: status.lastError?.code ?? '',
    lastError: status.lastError?.message ?? '',
    lastErrorMs: status.lastError?.atMs ?? 0,
    encoding: version?.encoding ?? '',
    lastSuccessNodeId: status.lastSuccessNodeId,
    lastSuccessUnchanged: status.lastSuccessUnchanged,
    preferredNodeId: feed.preferredNodeId,
    nextRefreshMs: feed.nextRefreshMs,
    refreshGraceMs: feed.refreshGraceMs,
  };
}

/** Fills the fields a request left at zero with the configured defaults. */
export function definitionFromWire(wire: impcdr.v1.IFeedDefinition | null | undefined, defaults: CdrConfig['feeds']): Partial<FeedDefinition> {
  return {
    id: wire?.id ?? '',
    source: wire?.source ?? '',
    format: (wire?.format ?? '') as FeedDefinition['format'],
    zone: wire?.zone ?? '',
    category: wire?.category || 'block',
    refreshSeconds: wire?.refreshSeconds ? Number(wire.refreshSeconds) : defaults.refreshSeconds,
    maxBytes: wire?.maxBytes ? Number(wire.maxBytes) : defaults.maxBytes,
    timeoutMs: wire?.timeoutMs ? Number(wire.timeoutMs) : defaults.timeoutMs,
    caPem: wire?.caPem ?? '',
  };
}
