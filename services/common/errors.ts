/**
 * Error catalogue of IMP-CDR. Every error that leaves a module is a `CdrError` with a stable
 * `ERR_<AREA>_<CONDITION>` code; tests and callers match on the code, never on the message.
 */

export const ERROR_CODES = {
  ERR_CONFIG_NOT_FOUND: 'Configuration file not found',
  ERR_CONFIG_PARSE: 'Configuration file is not valid YAML',
  ERR_CONFIG_INVALID: 'Configuration value is invalid',
  ERR_CONFIG_UNKNOWN_KEY: 'Configuration contains an unknown key',

  ERR_STATE_TRANSITION: 'Lifecycle transition is not allowed from the current state',
  ERR_SHUTDOWN_TIMEOUT: 'Shutdown step did not finish in time',

  ERR_INDEX_LOCKED: 'Another process holds the index',
  ERR_INDEX_OPEN: 'Opening the index failed',
  ERR_INDEX_NOT_OPEN: 'The index is not open',

  ERR_TLS_MATERIAL: 'TLS material is missing or invalid',
  ERR_PEER_INVALID: 'Peer record is invalid',
  ERR_REPLICATION_LINK: 'Replication link to the peer failed',
  ERR_REPLICATION_PEER_MISMATCH: 'The peer presented a certificate other than the pinned one',
  ERR_REPLICATION_REQUEST: 'Replication request failed',
  ERR_TLS_ENROLL: 'Client enrolment failed',

  ERR_KEY_INVALID: 'Object key is invalid',
  ERR_KEY_KIND: 'Object kind is invalid',

  ERR_POLICY_PARSE: 'Policy document is not valid YAML',
  ERR_POLICY_INVALID: 'Policy document is invalid',
  ERR_POLICY_VERSION_NOT_NEWER: 'Policy version must be greater than the version in force',

  ERR_PROTO_FRAME_TOO_LARGE: 'Frame is larger than the maximum frame size',
  ERR_PROTO_MALFORMED_FRAME: 'Frame could not be decoded',
  ERR_PROTO_UNKNOWN_MESSAGE_TYPE: 'Message type is unknown',
  ERR_PROTO_HANDSHAKE_REQUIRED: 'The first message must be Hello',
  ERR_PROTO_HANDSHAKE_TIMEOUT: 'No Hello arrived in time',
  ERR_PROTO_DUPLICATE_HELLO: 'Hello was already accepted on this connection',
  ERR_PROTO_OOS_TOO_OLD: 'OOS firmware version is older than the minimum',
  ERR_PROTO_MODEL_NOT_SUPPORTED: 'IMP model is not supported',
  ERR_PROTO_IMP_ID_MISMATCH: 'IMP id does not match the client certificate',
  ERR_PROTO_INVALID_HELLO: 'Hello is missing a required field',
  ERR_PROTO_PROTOCOL_VERSION: 'No protocol version in common',
  ERR_PROTO_BATCH_TOO_LARGE: 'Batch has more entries than allowed',
  ERR_PROTO_EMPTY_BATCH: 'Batch has no entries',
  ERR_PROTO_INVALID_OBSERVATION: 'Observation is invalid',
  ERR_PROTO_TOO_MANY_IN_FLIGHT: 'Too many requests in flight on this connection',
  ERR_PROTO_TOO_MANY_SUBSCRIPTIONS: 'Subscription limit reached on this connection',
  ERR_PROTO_INVALID_REQUEST_ID: 'Request id must be greater than zero',
  ERR_PROTO_SHUTTING_DOWN: 'The repository is shutting down',
  ERR_PROTO_INTERNAL: 'Internal error',
  ERR_PROTO_CONNECTION_CLOSED: 'Connection closed',

  ERR_CONTROL_UNAVAILABLE: 'The repository control socket is not reachable',
  ERR_CONTROL_REQUEST: 'Control request failed',

  ERR_CLI_USAGE: 'Command line is invalid',

  // SNMP agent and AgentX subagent (services/snmp)
  ERR_SNMP_CONFIG_INVALID: 'SNMP settings are inconsistent',
  ERR_SNMP_AGENT_BIND: 'The standalone SNMP agent could not bind its UDP port',
  ERR_SNMP_MASTER_UNAVAILABLE: 'The AgentX master agent is not reachable',
  ERR_SNMP_REGISTER_FAILED: 'The AgentX master agent rejected a registration',
  ERR_SNMP_NOTIFY_FAILED: 'A notification could not be sent',
  // IMP client module, the replay tool and the Postfix policy adapter (modules/imp-client).
  ERR_IMPCLIENT_NO_NODE: 'No repository node is configured',
  ERR_IMPCLIENT_UNAVAILABLE: 'No repository node is reachable',
  ERR_IMPCLIENT_HELLO_REJECTED: 'The repository rejected the Hello of this IMP',
  ERR_IMPCLIENT_TIMEOUT: 'The repository did not answer in time',
  ERR_IMPCLIENT_STATE: 'The IMP client state folder is unusable',
  ERR_IMPCLIENT_SPOOL_FULL: 'The spool is full and a batch was dropped',
  ERR_IMPCLIENT_SPOOL_CORRUPT: 'A spool file does not decode',
  ERR_IMPCLIENT_INVALID_REPORT: 'Session report is invalid',
  ERR_IMPCLIENT_STOPPED: 'The IMP client is stopped',
  ERR_REPLAY_INPUT: 'Replay input cannot be read',
  ERR_REPLAY_MESSAGE: 'Message cannot be used for replay',
  ERR_POLICYD_REQUEST: 'Policy delegation request is invalid',
  // Pairing (services/pairing and cdrctl pair/unpair).
  ERR_PAIR_CODE_INVALID: 'Pairing code is wrong',
  ERR_PAIR_WINDOW_CLOSED: 'No pairing window is open on the other node',
  ERR_PAIR_WINDOW_EXPIRED: 'The pairing window has expired',
  ERR_PAIR_TOO_MANY_ATTEMPTS: 'Too many wrong pairing codes; the pairing window is locked',
  ERR_PAIR_FINGERPRINT_MISMATCH: 'SSH host key fingerprint does not match the expected one',
  ERR_PAIR_FINGERPRINT_INVALID: 'SSH host key fingerprint is not in the SHA256: form',
  ERR_PAIR_CANCELLED: 'The technician did not confirm',
  ERR_PAIR_UNREACHABLE: 'The pairing service of the other node is not reachable',
  ERR_PAIR_AUTH_REJECTED: 'The other node rejected the SSH authentication',
  ERR_PAIR_PROTOCOL: 'The other node sent an unexpected pairing message',
  ERR_PAIR_SELF: 'A node cannot pair with itself',
  ERR_PAIR_NOT_PAIRED: 'This node has no peer',
  ERR_PAIR_DAEMON_UNAVAILABLE: 'The pairing daemon is not reachable',
  ERR_PAIR_HOST_KEY: 'The SSH host key is missing or invalid',
  ERR_PAIR_BUSY: 'Another pairing or unpairing is in progress',
  // Appliance: hardware check (hw/) and firmware bundles (firmware/).
  ERR_HW_E_SERIES: 'E-series hardware cannot run IMP-CDR',
  ERR_HW_UNSUPPORTED_MODEL: 'Hardware model is not supported',
  ERR_HW_DMI_UNREADABLE: 'DMI product name cannot be read',
  ERR_HW_FACT_UNREADABLE: 'A hardware fact cannot be read',
  ERR_HW_BELOW_MINIMUM: 'Hardware is below the minimum of its profile',
  ERR_HW_INTERFACE_MISSING: 'Network interface of a role is missing',
  ERR_HW_CHECK_FAILED: 'Hardware check failed',
  ERR_FW_BUNDLE_INVALID: 'Firmware bundle is not a valid bundle',
  ERR_FW_BUNDLE_TRUNCATED: 'Firmware bundle is truncated',
  ERR_FW_BUNDLE_TOO_LARGE: 'Firmware bundle is larger than the maximum',
  ERR_FW_SIGNATURE_INVALID: 'Firmware manifest signature does not verify',
  ERR_FW_KEY_INVALID: 'Firmware signing or verification key is invalid',
  ERR_FW_MANIFEST_INVALID: 'Firmware manifest is invalid',
  ERR_FW_PAYLOAD_MISSING: 'Firmware payload listed in the manifest is missing',
  ERR_FW_PAYLOAD_HASH: 'Firmware payload does not match its SHA-256 in the manifest',
  ERR_FW_WRONG_HARDWARE: 'Firmware bundle is not for this hardware model',
  ERR_FW_DOWNGRADE: 'Firmware version is older than the installed version',
  ERR_FW_ALREADY_INSTALLED: 'Firmware version is already installed',
  ERR_FW_CLIENTS_TOO_OLD: 'Connected IMPs run an OOS version older than the bundle requires',
  ERR_FW_INSTALL_FAILED: 'Installing the firmware payload failed',
  ERR_FW_NOT_READY: 'Services did not become ready after the firmware change',
  ERR_FW_NO_PREVIOUS: 'No previous firmware to roll back to',
  ERR_RESET_DEFAULT_CONFIG: 'The default configuration for a factory reset is missing or invalid',
  ERR_RESET_STOP_FAILED: 'Stopping the services for a factory reset failed',
  ERR_RESET_STILL_RUNNING: 'A daemon still runs after the services were stopped for a factory reset',
  // External reputation sources: feeds, the DNS front, the query-through DNSBL cache, DMARC reports.
  ERR_FEED_INVALID: 'Feed definition is invalid',
  ERR_FEED_NOT_FOUND: 'Feed does not exist',
  ERR_FEED_EXISTS: 'A feed with this id already exists',
  ERR_FEED_FETCH: 'Fetching the feed failed',
  ERR_FEED_TIMEOUT: 'Fetching the feed timed out',
  ERR_FEED_TOO_LARGE: 'Feed data is larger than the size limit',
  ERR_FEED_TRUNCATED: 'Feed data is shorter than announced',
  ERR_FEED_TLS: 'The feed server certificate does not verify',
  ERR_FEED_EMPTY: 'Feed data has no entries',
  ERR_FEED_FORMAT: 'Feed data is not in the feed format',
  ERR_FEED_LISTS_EVERYTHING: 'Feed data lists the whole address space',
  ERR_FEED_EXPORT: 'Exporting the index failed',
  ERR_DNS_LISTEN: 'The DNS front cannot listen',
  ERR_DNSBL_UNKNOWN_LIST: 'DNSBL is not configured for query-through',
  ERR_DNSBL_TIMEOUT: 'The upstream DNSBL query timed out',
  ERR_DNSBL_UPSTREAM: 'The upstream DNSBL answered with an error',
  ERR_DNSBL_BUDGET_EXHAUSTED: 'The daily query budget of the DNSBL is used up',
  ERR_DMARC_EMPTY: 'DMARC report is empty',
  ERR_DMARC_NOT_XML: 'DMARC report is not XML',
  ERR_DMARC_DOUBLE_COMPRESSED: 'DMARC report is compressed twice',
  ERR_DMARC_INVALID: 'DMARC report is not an aggregate report',
} as const;

/** Stable identifier of an error condition. */
export type ErrorCode = keyof typeof ERROR_CODES;

/**
 * Error with a stable code, the values involved as `details`, and the lower error as `cause`.
 *
 * @example
 * throw new CdrError('ERR_CONFIG_INVALID', 'limits.maxInFlight must be an integer from 1 to 4096, got 0', {
 *   details: { key: 'limits.maxInFlight', value: 0 },
 * })
 */
export class CdrError extends Error {
  readonly code: ErrorCode;
  readonly details: Readonly<Record<string, unknown>>;

  constructor(
    code: ErrorCode,
    message?: string,
    options: { cause?: unknown; details?: Record<string, unknown> } = {},
  ) {
    super(message ?? ERROR_CODES[code], options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'CdrError';
    this.code = code;
    this.details = Object.freeze({ ...(options.details ?? {}) });
  }
}

/** Tells whether `value` is a `CdrError`, optionally with the given code. */
export function isCdrError(value: unknown, code?: ErrorCode): value is CdrError {
  return value instanceof CdrError && (code === undefined || value.code === code);
}
