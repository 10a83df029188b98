/**
 * Public API of the IMP Client IMP-CDR Module. See docs/imp-client.md.
 */

export { ImpClient, MODULE_VERSION } from './imp-client.js';
export type { AcknowledgedBatch, ImpClientOptions, ImpClientState, ImpClientStats, LookupAnswer, LookupKey } from './imp-client.js';
export type { CacheCounters } from './cache.js';
export { formatNodeAddress, parseNodeAddress } from './nodes.js';
export type { BackoffOptions, NodeAddress } from './nodes.js';
export { MESSAGE_LABELS, domainOfAddress, normaliseIp, sessionToDeltas } from './session.js';
export type { AuthResult, MessageLabel, ObjectDelta, SessionReport } from './session.js';
export type { CorruptBatch, DroppedBatch } from './spool.js';
