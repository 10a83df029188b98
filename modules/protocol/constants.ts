/**
 * Constants of the native IMP protocol: versions, limits, message types and reason codes. The message
 * layouts are in `imp.proto` and `control.proto`; the code generated from them is in `generated/`.
 */

import type { ErrorCode } from '../../services/common/errors.js';
import { impcdr } from './generated/messages.js';

export const proto = impcdr.v1;

/** Protocol version this build speaks. HelloAccepted names the lower of the two sides' versions. */
export const PROTOCOL_VERSION = 1;

/** Oldest protocol version the repository still accepts. */
export const MIN_PROTOCOL_VERSION = 1;

/** Default TCP ports. */
export const DEFAULT_IMP_PORT = 7300;

/** Request id of messages the server pushes without a request. */
export const PUSH_REQUEST_ID = 0;

/** Bodies of `ClientMessage`, the request types a client may send. */
export type ClientMessageType = 'hello' | 'observe' | 'lookup' | 'subscribe' | 'heartbeat';

/** Bodies of `ServerMessage`. */
export type ServerMessageType =
  | 'helloAccepted'
  | 'helloRejected'
  | 'observeAck'
  | 'lookupResponse'
  | 'subscribeAck'
  | 'reputationChanged'
  | 'heartbeatAck'
  | 'error';

export type ObjectKindName = 'ip' | 'network' | 'domain' | 'user';
export type VerdictName = 'trusted' | 'neutral' | 'suspect' | 'malicious';

export const OBJECT_KINDS: readonly ObjectKindName[] = ['ip', 'network', 'domain', 'user'];

const KIND_TO_WIRE: Record<ObjectKindName, impcdr.v1.ObjectKind> = {
  ip: proto.ObjectKind.OBJECT_KIND_IP,
  network: proto.ObjectKind.OBJECT_KIND_NETWORK,
  domain: proto.ObjectKind.OBJECT_KIND_DOMAIN,
  user: proto.ObjectKind.OBJECT_KIND_USER,
};

const VERDICT_TO_WIRE: Record<VerdictName, impcdr.v1.Verdict> = {
  trusted: proto.Verdict.VERDICT_TRUSTED,
  neutral: proto.Verdict.VERDICT_NEUTRAL,
  suspect: proto.Verdict.VERDICT_SUSPECT,
  malicious: proto.Verdict.VERDICT_MALICIOUS,
};

export function kindToWire(kind: ObjectKindName): impcdr.v1.ObjectKind {
  return KIND_TO_WIRE[kind];
}

/** Returns the kind name of a wire value, or undefined for UNSPECIFIED and unknown numbers. */
export function kindFromWire(kind: number | null | undefined): ObjectKindName | undefined {
  return OBJECT_KINDS.find((name) => KIND_TO_WIRE[name] === kind);
}

export function verdictToWire(verdict: VerdictName): impcdr.v1.Verdict {
  return VERDICT_TO_WIRE[verdict];
}

export function verdictFromWire(verdict: number | null | undefined): VerdictName | undefined {
  return (Object.keys(VERDICT_TO_WIRE) as VerdictName[]).find((name) => VERDICT_TO_WIRE[name] === verdict);
}

/** Wire reason code of each catalogue code that a peer can receive. */
const WIRE_ERROR_CODES: Partial<Record<ErrorCode, impcdr.v1.ErrorCode>> = {
  ERR_PROTO_FRAME_TOO_LARGE: proto.ErrorCode.ERROR_CODE_FRAME_TOO_LARGE,
  ERR_PROTO_MALFORMED_FRAME: proto.ErrorCode.ERROR_CODE_MALFORMED_FRAME,
  ERR_PROTO_UNKNOWN_MESSAGE_TYPE: proto.ErrorCode.ERROR_CODE_UNKNOWN_MESSAGE_TYPE,
  ERR_PROTO_HANDSHAKE_REQUIRED: proto.ErrorCode.ERROR_CODE_HANDSHAKE_REQUIRED,
  ERR_PROTO_HANDSHAKE_TIMEOUT: proto.ErrorCode.ERROR_CODE_HANDSHAKE_TIMEOUT,
  ERR_PROTO_DUPLICATE_HELLO: proto.ErrorCode.ERROR_CODE_DUPLICATE_HELLO,
  ERR_PROTO_OOS_TOO_OLD: proto.ErrorCode.ERROR_CODE_OOS_TOO_OLD,
  ERR_PROTO_MODEL_NOT_SUPPORTED: proto.ErrorCode.ERROR_CODE_MODEL_NOT_SUPPORTED,
  ERR_PROTO_IMP_ID_MISMATCH: proto.ErrorCode.ERROR_CODE_IMP_ID_MISMATCH,
  ERR_PROTO_INVALID_HELLO: proto.ErrorCode.ERROR_CODE_INVALID_HELLO,
  ERR_PROTO_PROTOCOL_VERSION: proto.ErrorCode.ERROR_CODE_PROTOCOL_VERSION,
  ERR_PROTO_BATCH_TOO_LARGE: proto.ErrorCode.ERROR_CODE_BATCH_TOO_LARGE,
  ERR_PROTO_EMPTY_BATCH: proto.ErrorCode.ERROR_CODE_EMPTY_BATCH,
  ERR_KEY_INVALID: proto.ErrorCode.ERROR_CODE_INVALID_KEY,
  ERR_KEY_KIND: proto.ErrorCode.ERROR_CODE_INVALID_KEY,
  ERR_PROTO_INVALID_OBSERVATION: proto.ErrorCode.ERROR_CODE_INVALID_OBSERVATION,
  ERR_PROTO_TOO_MANY_IN_FLIGHT: proto.ErrorCode.ERROR_CODE_TOO_MANY_IN_FLIGHT,
  ERR_PROTO_TOO_MANY_SUBSCRIPTIONS: proto.ErrorCode.ERROR_CODE_TOO_MANY_SUBSCRIPTIONS,
  ERR_PROTO_INVALID_REQUEST_ID: proto.ErrorCode.ERROR_CODE_INVALID_REQUEST_ID,
  ERR_PROTO_SHUTTING_DOWN: proto.ErrorCode.ERROR_CODE_SHUTTING_DOWN,
  ERR_PROTO_INTERNAL: proto.ErrorCode.ERROR_CODE_INTERNAL,
};

/** Returns the wire reason code for a catalogue code; INTERNAL for codes a peer is not meant to see. */
export function errorCodeToWire(code: ErrorCode): impcdr.v1.ErrorCode {
  return WIRE_ERROR_CODES[code] ?? proto.ErrorCode.ERROR_CODE_INTERNAL;
}

/** Returns the catalogue code of a wire reason code, for clients that raise `CdrError`s. */
export function errorCodeFromWire(code: number | null | undefined): ErrorCode {
  const entry = Object.entries(WIRE_ERROR_CODES).find(([, wire]) => wire === code);
  return (entry?.[0] as ErrorCode | undefined) ?? 'ERR_PROTO_INTERNAL';
}
