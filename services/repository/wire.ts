/**
 * Conversion between index results and protocol messages, shared by the IMP listener and the control
 * socket.
 */

import { errorCodeToWire, kindFromWire, kindToWire, proto, verdictToWire, type ObjectKindName } from '../../modules/protocol/constants.js';
import { CdrError } from '../common/errors.js';
import type { ObjectReputation } from './reputation-index.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';

export function reputationToWire(reputation: ObjectReputation): impcdr.v1.IReputation {
  return {
    object: { kind: kindToWire(reputation.kind), key: reputation.key },
    score: reputation.score,
    verdict: verdictToWire(reputation.verdict),
    reasons: reputation.reasons,
    counters: reputation.counters,
    listings: reputation.listings,
    ttlSeconds: reputation.ttlSeconds,
    policyVersion: reputation.policyVersion,
    firstSeenMs: reputation.firstSeenMs,
    lastSeenMs: reputation.lastSeenMs,
  };
}

/** Returns the kind of a wire key. @throws CdrError `ERR_KEY_KIND` for UNSPECIFIED or unknown kinds */
export function kindOfWireKey(object: impcdr.v1.IObjectKey | null | undefined): ObjectKindName {
  const kind = kindFromWire(object?.kind);
  if (!kind) {
    throw new CdrError('ERR_KEY_KIND', `object kind ${object?.kind ?? 'missing'} is not ip, network, domain or user`, {
      details: { kind: object?.kind },
    });
  }
  return kind;
}

/** Builds an EntryError for entry `index` from any thrown value. */
export function entryError(index: number, error: unknown): impcdr.v1.IEntryError {
  if (error instanceof CdrError) {
    return { index, code: errorCodeToWire(error.code), message: error.message };
  }
  return { index, code: proto.ErrorCode.ERROR_CODE_INTERNAL, message: 'internal error' };
}
