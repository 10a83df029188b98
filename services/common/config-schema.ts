/**
 * Defaults and JSON Schema of `cdr.yaml`. Every key is optional in the file; a missing key takes its
 * default here, and an unknown key stops the start.
 */

/** Log levels that pino accepts, lowest to highest. */
export type LogLevel = 'trace' | 'debug' | 'info' | 'warn' | 'error' | 'fatal' | 'silent';

/** The checked, frozen configuration of one node. Paths are absolute after loading. */
export interface CdrConfig {
  node: {
    /** Node id; empty means generated on first start and kept in `<paths.state>/node-id`. @defaultValue '' */
    id: string;
  };
  paths: {
    /** Folder of the index, TLS material and spool. @defaultValue '/var/lib/imp-cdr' */
    state: string;
    /** Folder of the control socket. @defaultValue '/run/imp-cdr' */
    run: string;
  };
  imp: {
    /** Address of the native IMP listener. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the native IMP listener; 0 picks a free port, which the start log names. @defaultValue 7300 */
    port: number;
    /** Oldest OOS firmware version an IMP may run, "MAJOR.MINOR[.PATCH]". @defaultValue '2.5' */
    minOosVersion: string;
    /** Time a new connection has to send Hello, in milliseconds. @defaultValue 10000 */
    handshakeTimeoutMs: number;
    /** Time without any frame after which a connection is closed, in milliseconds. @defaultValue 300000 */
    idleTimeoutMs: number;
    /** Address of this node that the other node sends to IMPs in its failover list; empty means `host`. @defaultValue '' */
    advertiseHost: string;
  };
  replication: {
    /** Address the replication listener (mutual TLS) binds to. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the replication listener; 0 picks a free port. @defaultValue 7301 */
    port: number;
    /** Address the peer connects to for replication; empty means `host`. @defaultValue '' */
    advertiseHost: string;
    /** Log entries kept for a peer that has not applied them; a peer further behind resyncs by snapshot. @defaultValue 1000000 */
    logRetentionEntries: number;
  };
  tls: {
    /** Folder of the CA and server certificate, relative to `paths.state`. @defaultValue 'tls' */
    dir: string;
    /** Generate the CA and server certificate when they are missing. @defaultValue true */
    generate: boolean;
    /** Validity of a generated server certificate, in days. @defaultValue 825 */
    serverValidDays: number;
    /** Validity of an enrolled client certificate, in days. @defaultValue 825 */
    clientValidDays: number;
  };
  limits: {
    /** Maximum size of one frame, in bytes. @defaultValue 4194304 */
    maxFrameBytes: number;
    /** Maximum keys in one Lookup. @defaultValue 1000 */
    maxLookupKeys: number;
    /** Maximum observations in one Observe. @defaultValue 10000 */
    maxObserveEntries: number;
    /** Maximum requests in flight per connection. @defaultValue 64 */
    maxInFlight: number;
    /** Maximum subscribed keys per connection. @defaultValue 10000 */
    maxSubscriptions: number;
  };
  index: {
    /** Width of a counter time bucket, in seconds. @defaultValue 3600 */
    bucketSeconds: number;
    /** Age after which observations are no longer accepted or counted, in days. @defaultValue 30 */
    retentionDays: number;
    /** How far in the future an interval may start, in seconds, to allow for clock skew. @defaultValue 300 */
    maxFutureSkewSeconds: number;
  };
  cache: {
    /** Entries of the in-memory reputation cache. @defaultValue 100000 */
    maxEntries: number;
    /** Age after which a cached reputation is computed again, in milliseconds. @defaultValue 60000 */
    maxAgeMs: number;
  };
  control: {
    /** Control socket path, relative to `paths.run`. @defaultValue 'control.sock' */
    socket: string;
  };
  log: {
    /** @defaultValue 'info' */
    level: LogLevel;
  };
  shutdown: {
    /** Time each shutdown step may take before the next one is forced, in milliseconds. @defaultValue 10000 */
    timeoutMs: number;
  };
  snmp: SnmpConfig;
  /** The IMP client module on an IMP: where the repository is and how reports are batched and spooled. */
  impClient: {
    /** Repository nodes, "HOST:PORT" (IPv6 as "[ADDRESS]:PORT"), tried in order. @defaultValue ['127.0.0.1:7300'] */
    nodes: string[];
    /** IMP id sent in Hello; empty means the common name of the client certificate. @defaultValue '' */
    impId: string;
    /** Cluster id sent in Hello. @defaultValue 'default' */
    clusterId: string;
    /** IMP hardware model sent in Hello, for example "M300". @defaultValue 'M300' */
    model: string;
    /** OOS firmware version sent in Hello, "MAJOR.MINOR[.PATCH]". @defaultValue '2.5' */
    oosVersion: string;
    /** Folder with `ca.pem`, `client.pem` and `client.key` from `cdrctl client enroll`, relative to `paths.state`. @defaultValue 'imp-client' */
    bundleDir: string;
    /** Folder of the spool and the sequence file, relative to `paths.state`. @defaultValue 'imp-spool' */
    spoolDir: string;
    /** Width of an aggregation interval, in seconds. @defaultValue 60 */
    intervalSeconds: number;
    /** Maximum batches waiting in the spool. @defaultValue 10000 */
    spoolMaxBatches: number;
    /** Maximum bytes of batches waiting in the spool. @defaultValue 268435456 */
    spoolMaxBytes: number;
  };
  /** The Postfix SMTPD access policy adapter `imp-cdr-policyd`. */
  policyd: {
    /** Address the policy server binds to. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the policy server. @defaultValue 10040 */
    port: number;
    /** Action returned for a client IP with verdict `trusted`. @defaultValue 'DUNNO' */
    trusted: string;
    /** Action returned for verdict `neutral`. @defaultValue 'DUNNO' */
    neutral: string;
    /** Action returned for verdict `suspect`. @defaultValue 'DEFER_IF_PERMIT Service temporarily unavailable' */
    suspect: string;
    /** Action returned for verdict `malicious`. @defaultValue 'REJECT Client host rejected by reputation' */
    malicious: string;
    /** Action returned when no verdict arrives in time or no node is reachable. @defaultValue 'DUNNO' */
    unavailable: string;
    /** Time a lookup may take before `unavailable` is returned, in milliseconds. @defaultValue 2000 */
    lookupTimeoutMs: number;
  };
  pairing: {
    /** Address the pairing SSH listener (imp-cdr-pairing) binds to. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the pairing SSH listener; 0 picks a free port, which the start log names. @defaultValue 7302 */
    port: number;
    /** ed25519 host key in OpenSSH format, relative to `paths.state`; created on first start. @defaultValue 'pairing/ssh_host_ed25519_key' */
    hostKey: string;
    /** Local socket of the pairing daemon, relative to `paths.run`. @defaultValue 'pairing.sock' */
    socket: string;
    /** Lifetime of a pairing window that `cdrctl pair open` opens without `--seconds`, in seconds. @defaultValue 600 */
    windowSeconds: number;
    /** Wrong pairing codes after which a window is locked, so that even the right code is rejected. @defaultValue 3 */
    maxAttempts: number;
    /** Time to connect to the other node and finish the SSH handshake, in milliseconds. @defaultValue 10000 */
    connectTimeoutMs: number;
  };
  supervision: {
    /**
     * Start time asked of systemd (`EXTEND_TIMEOUT_USEC`) while a long step such as the index open runs,
     * renewed every half of it until the step ends, in milliseconds. @defaultValue 60000
     */
    extendTimeoutMs: number;
    /** Time a watchdog health check may take before it counts as failed, in milliseconds. @defaultValue 5000 */
    healthCheckTimeoutMs: number;
  };
  firmware: {
    /**
     * Ed25519 public key (PEM) that firmware bundles must be signed for; the package ships it.
     * @defaultValue '/opt/imp-cdr/firmware/release-key.pem'
     */
    publicKey: string;
    /** Time every unit and the peer link have to become ready after an update, in milliseconds. @defaultValue 120000 */
    readyTimeoutMs: number;
  };
  feeds: {
    /** Refresh interval of a feed added without one, in seconds; 0 means manual refresh only. @defaultValue 3600 */
    refreshSeconds: number;
    /** Size limit of a feed added without one, in bytes. @defaultValue 67108864 */
    maxBytes: number;
    /** Fetch timeout of a feed added without one, in milliseconds. @defaultValue 30000 */
    timeoutMs: number;
    /**
     * Minimum time, in seconds, that the node that is not the feed's preferred node waits after a
     * refresh is due before it fetches itself because no refresh was recorded. @defaultValue 30
     */
    fallbackGraceSeconds: number;
    /** The same wait as a percentage of the feed's refresh interval. The longer of the two applies. @defaultValue 10 */
    fallbackGracePercent: number;
  };
  dns: {
    /** Serve feed zones (and the index zone) over DNS. @defaultValue true */
    enabled: boolean;
    /** Address of the DNS front, UDP and TCP. @defaultValue '127.0.0.1' */
    host: string;
    /** Port of the DNS front; 53 on the appliance, 0 picks a free port. @defaultValue 5353 */
    port: number;
    /** TTL of answers from a feed without `$TTL`, in seconds (rbldnsd's default, 35 minutes). @defaultValue 2100 */
    defaultTtl: number;
    /** Zone that serves the consolidated index by verdict; empty serves none. @defaultValue '' */
    indexZone: string;
  };
  dnsbl: {
    /** Resolvers the query-through cache asks, as "address:port"; empty disables query-through. @defaultValue [] */
    resolvers: string[];
    /** Time one upstream query may take, in milliseconds. @defaultValue 2000 */
    timeoutMs: number;
    /** Time a negative answer is cached when the upstream sends no SOA, in seconds. @defaultValue 300 */
    negativeTtlSeconds: number;
    /** Longest time any answer is cached, in seconds. @defaultValue 86400 */
    maxTtlSeconds: number;
    /** DNSBLs queried through the cache. @defaultValue [] */
    lists: DnsblListConfig[];
  };
}

/** One DNSBL that the query-through cache asks on behalf of the IMPs. */
export interface DnsblListConfig {
  /** Zone of the DNSBL, also the zone the DNS front serves it as. */
  zone: string;
  /** Meaning of each return code; a key may be a range written `127.0.1.2-6`. Codes not listed mean "listed". */
  codes: Record<string, string>;
  /** Upstream queries allowed per UTC day; 0 means no limit. */
  dailyBudget: number;
  /** Category whose policy weight applies to a listing. */
  category: string;
}

/** SNMPv3 user of the standalone agent (USM, RFC 3414). */
export interface SnmpUserConfig {
  /** USM user name. */
  name: string;
  /** Security level the user must use; requests at a lower level are rejected. @defaultValue 'authPriv' */
  level: 'authNoPriv' | 'authPriv';
  /** Authentication protocol (RFC 7860 for the SHA-2 family). @defaultValue 'sha256' */
  authProtocol: 'sha1' | 'sha224' | 'sha256' | 'sha384' | 'sha512';
  /** Authentication passphrase, at least 8 characters (RFC 3414 section 11.2). */
  authPassphrase: string;
  /** Privacy protocol: AES-128 in CFB mode (RFC 3826). @defaultValue 'aes128' */
  privProtocol: 'aes128';
  /** Privacy passphrase, at least 8 characters; required when `level` is authPriv. @defaultValue '' */
  privPassphrase: string;
}

/** Receiver of the standalone agent's notifications (SNMPv2 traps). */
export interface SnmpTrapTargetConfig {
  /** Address of the receiver. */
  host: string;
  /** UDP port of the receiver. @defaultValue 162 */
  port: number;
  /** USM user from `snmp.standalone.users` that sends the trap; empty means `community` with v2c. @defaultValue '' */
  user: string;
  /** v2c community, used only when `user` is empty. @defaultValue '' */
  community: string;
}

/** Settings of imp-cdr-snmp, the AgentX subagent and standalone SNMP agent. */
export interface SnmpConfig {
  /** `agentx` registers with a master agent (snmpd), and `standalone` serves SNMP itself. @defaultValue 'agentx' */
  mode: 'agentx' | 'standalone';
  /**
   * Private enterprise number under which IMP-CDR-MIB sits. 32473 is the number IANA reserves for
   * documentation (RFC 5612); packaging/mib/IMP-CDR-MIB.txt must name the same number.
   * @defaultValue 32473
   */
  enterpriseNumber: number;
  /** Interval between two reads of the repository status over the control socket, in milliseconds. @defaultValue 5000 */
  pollIntervalMs: number;
  /** Replication lag above which impCdrReplicationLagHigh is sent, in milliseconds. @defaultValue 60000 */
  replicationLagThresholdMs: number;
  /** Free space on the state folder's file system below which impCdrDiskSpaceLow is sent, in KiB. @defaultValue 1048576 */
  diskFreeThresholdKiB: number;
  agentx: {
    /** Address of the master agent's AgentX TCP socket. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the master agent's AgentX socket. @defaultValue 705 */
    port: number;
    /** First delay before reconnecting to the master agent, in milliseconds; doubles up to `reconnectMaxMs`. @defaultValue 1000 */
    reconnectMinMs: number;
    /** Maximum delay between two reconnection attempts, in milliseconds. @defaultValue 60000 */
    reconnectMaxMs: number;
  };
  standalone: {
    /** Address the standalone agent binds to. @defaultValue '127.0.0.1' */
    host: string;
    /** UDP port of the standalone agent. @defaultValue 1161 */
    port: number;
    /** SNMP engine id as hex (RFC 3411 SnmpEngineID, 5 to 32 octets); empty means generated at each start. @defaultValue '' */
    engineId: string;
    /** SNMPv3 users. With none, the agent rejects every SNMPv3 request. @defaultValue [] */
    users: SnmpUserConfig[];
    /** v2c communities with read-only access. Empty disables v2c; there is no default community. @defaultValue [] */
    communities: string[];
    /** Receivers of notifications. @defaultValue [] */
    trapTargets: SnmpTrapTargetConfig[];
  };
}

export const DEFAULT_CONFIG: CdrConfig = {
  node: { id: '' },
  paths: { state: '/var/lib/imp-cdr', run: '/run/imp-cdr' },
  imp: {
    host: '127.0.0.1',
    port: 7300,
    minOosVersion: '2.5',
    handshakeTimeoutMs: 10_000,
    idleTimeoutMs: 300_000,
    advertiseHost: '',
  },
  replication: { host: '127.0.0.1', port: 7301, advertiseHost: '', logRetentionEntries: 1_000_000 },
  tls: { dir: 'tls', generate: true, serverValidDays: 825, clientValidDays: 825 },
  limits: {
    maxFrameBytes: 4 * 1024 * 1024,
    maxLookupKeys: 1000,
    maxObserveEntries: 10_000,
    maxInFlight: 64,
    maxSubscriptions: 10_000,
  },
  index: { bucketSeconds: 3600, retentionDays: 30, maxFutureSkewSeconds: 300 },
  cache: { maxEntries: 100_000, maxAgeMs: 60_000 },
  control: { socket: 'control.sock' },
  log: { level: 'info' },
  shutdown: { timeoutMs: 10_000 },
  snmp: {
    mode: 'agentx',
    enterpriseNumber: 32473,
    pollIntervalMs: 5000,
    replicationLagThresholdMs: 60_000,
    diskFreeThresholdKiB: 1024 * 1024,
    agentx: { host: '127.0.0.1', port: 705, reconnectMinMs: 1000, reconnectMaxMs: 60_000 },
    standalone: { host: '127.0.0.1', port: 1161, engineId: '', users: [], communities: [], trapTargets: [] },
  },
  impClient: {
    nodes: ['127.0.0.1:7300'],
    impId: '',
    clusterId: 'default',
    model: 'M300',
    oosVersion: '2.5',
    bundleDir: 'imp-client',
    spoolDir: 'imp-spool',
    intervalSeconds: 60,
    spoolMaxBatches: 10_000,
    spoolMaxBytes: 256 * 1024 * 1024,
  },
  policyd: {
    host: '127.0.0.1',
    port: 10040,
    trusted: 'DUNNO',
    neutral: 'DUNNO',
    suspect: 'DEFER_IF_PERMIT Service temporarily unavailable',
    malicious: 'REJECT Client host rejected by reputation',
    unavailable: 'DUNNO',
    lookupTimeoutMs: 2000,
  },
  pairing: {
    host: '127.0.0.1',
    port: 7302,
    hostKey: 'pairing/ssh_host_ed25519_key',
    socket: 'pairing.sock',
    windowSeconds: 600,
    maxAttempts: 3,
    connectTimeoutMs: 10_000,
  },
  supervision: { extendTimeoutMs: 60_000, healthCheckTimeoutMs: 5_000 },
  firmware: { publicKey: '/opt/imp-cdr/firmware/release-key.pem', readyTimeoutMs: 120_000 },
  feeds: { refreshSeconds: 3600, maxBytes: 64 * 1024 * 1024, timeoutMs: 30_000, fallbackGraceSeconds: 30, fallbackGracePercent: 10 },
  dns: { enabled: true, host: '127.0.0.1', port: 5353, defaultTtl: 2100, indexZone: '' },
  dnsbl: { resolvers: [], timeoutMs: 2000, negativeTtlSeconds: 300, maxTtlSeconds: 86_400, lists: [] },
};

/** Paths that `make run` uses: everything under the folder of the configuration file. */
export const DEVELOPMENT_PATHS: CdrConfig['paths'] = { state: '.', run: 'run' };

const integer = (minimum: number, maximum: number) => ({ type: 'integer', minimum, maximum });
const section = (properties: Record<string, unknown>) => ({
  type: 'object',
  additionalProperties: false,
  properties,
});

export const CONFIG_SCHEMA = section({
  node: section({
    id: { type: 'string', pattern: '^([a-z0-9][a-z0-9-]{0,62})?$' },
  }),
  paths: section({
    state: { type: 'string', minLength: 1 },
    run: { type: 'string', minLength: 1 },
  }),
  imp: section({
    host: { type: 'string', minLength: 1 },
    port: integer(0, 65535),
    minOosVersion: { type: 'string', pattern: '^[0-9]+\\.[0-9]+(\\.[0-9]+)?$' },
    handshakeTimeoutMs: integer(100, 600_000),
    idleTimeoutMs: integer(1000, 86_400_000),
    advertiseHost: { type: 'string' },
  }),
  replication: section({
    host: { type: 'string', minLength: 1 },
    port: integer(0, 65535),
    advertiseHost: { type: 'string' },
    logRetentionEntries: integer(0, 1_000_000_000),
  }),
  tls: section({
    dir: { type: 'string', minLength: 1 },
    generate: { type: 'boolean' },
    serverValidDays: integer(1, 3650),
    clientValidDays: integer(1, 3650),
  }),
  limits: section({
    maxFrameBytes: integer(1024, 64 * 1024 * 1024),
    maxLookupKeys: integer(1, 100_000),
    maxObserveEntries: integer(1, 1_000_000),
    maxInFlight: integer(1, 4096),
    maxSubscriptions: integer(0, 10_000_000),
  }),
  index: section({
    bucketSeconds: integer(60, 86_400),
    retentionDays: integer(1, 3650),
    maxFutureSkewSeconds: integer(0, 86_400),
  }),
  cache: section({
    maxEntries: integer(0, 100_000_000),
    maxAgeMs: integer(0, 86_400_000),
  }),
  control: section({
    socket: { type: 'string', minLength: 1 },
  }),
  log: section({
    level: { enum: ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] },
  }),
  shutdown: section({
    timeoutMs: integer(100, 600_000),
  }),
  snmp: section({
    mode: { enum: ['agentx', 'standalone'] },
    enterpriseNumber: integer(1, 4_294_967_295),
    pollIntervalMs: integer(100, 3_600_000),
    replicationLagThresholdMs: integer(1, 4_294_967_295),
    diskFreeThresholdKiB: integer(0, 4_294_967_295),
    agentx: section({
      host: { type: 'string', minLength: 1 },
      port: integer(1, 65535),
      reconnectMinMs: integer(10, 600_000),
      reconnectMaxMs: integer(10, 3_600_000),
    }),
    standalone: section({
      host: { type: 'string', minLength: 1 },
      port: integer(1, 65535),
      engineId: { type: 'string', pattern: '^([0-9a-fA-F]{10,64})?$' },
      users: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['name', 'authPassphrase'],
          properties: {
            name: { type: 'string', minLength: 1, maxLength: 32 },
            level: { enum: ['authNoPriv', 'authPriv'] },
            authProtocol: { enum: ['sha1', 'sha224', 'sha256', 'sha384', 'sha512'] },
            authPassphrase: { type: 'string', minLength: 8 },
            privProtocol: { enum: ['aes128'] },
            privPassphrase: { type: 'string' },
          },
        },
      },
      communities: { type: 'array', items: { type: 'string', minLength: 1, maxLength: 32 } },
      trapTargets: {
        type: 'array',
        items: {
          type: 'object',
          additionalProperties: false,
          required: ['host'],
          properties: {
            host: { type: 'string', minLength: 1 },
            port: integer(1, 65535),
            user: { type: 'string' },
            community: { type: 'string' },
          },
        },
      },
    }),
  }),
  impClient: section({
    nodes: {
      type: 'array',
      minItems: 1,
      maxItems: 16,
      items: { type: 'string', pattern: '^(\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9.-]+):[0-9]{1,5}$' },
    },
    impId: { type: 'string' },
    clusterId: { type: 'string', minLength: 1 },
    model: { type: 'string', minLength: 1 },
    oosVersion: { type: 'string', pattern: '^[0-9]+\\.[0-9]+(\\.[0-9]+)?$' },
    bundleDir: { type: 'string', minLength: 1 },
    spoolDir: { type: 'string', minLength: 1 },
    intervalSeconds: integer(1, 3600),
    spoolMaxBatches: integer(1, 10_000_000),
    spoolMaxBytes: integer(1024, 64 * 1024 * 1024 * 1024),
  }),
  policyd: section({
    host: { type: 'string', minLength: 1 },
    port: integer(0, 65535),
    trusted: { type: 'string', minLength: 1 },
    neutral: { type: 'string', minLength: 1 },
    suspect: { type: 'string', minLength: 1 },
    malicious: { type: 'string', minLength: 1 },
    unavailable: { type: 'string', minLength: 1 },
    lookupTimeoutMs: integer(10, 60_000),
  }),
  pairing: section({
    host: { type: 'string', minLength: 1 },
    port: integer(0, 65535),
    hostKey: { type: 'string', minLength: 1 },
    socket: { type: 'string', minLength: 1 },
    windowSeconds: integer(1, 3600),
    maxAttempts: integer(1, 10),
    connectTimeoutMs: integer(100, 600_000),
  }),
  supervision: section({
    extendTimeoutMs: integer(1000, 3_600_000),
    healthCheckTimeoutMs: integer(100, 600_000),
  }),
  firmware: section({
    publicKey: { type: 'string', minLength: 1 },
    readyTimeoutMs: integer(1000, 3_600_000),
  }),
  feeds: section({
    refreshSeconds: integer(0, 604_800),
    maxBytes: integer(1, 1_073_741_824),
    timeoutMs: integer(100, 600_000),
    fallbackGraceSeconds: integer(0, 86_400),
    fallbackGracePercent: integer(0, 100),
  }),
  dns: section({
    enabled: { type: 'boolean' },
    host: { type: 'string', minLength: 1 },
    port: integer(0, 65535),
    defaultTtl: integer(0, 2_147_483_647),
    indexZone: { type: 'string', pattern: '^([a-z0-9_-]+(\\.[a-z0-9_-]+)*)?$' },
  }),
  dnsbl: section({
    resolvers: { type: 'array', maxItems: 8, items: { type: 'string', pattern: '^(\\[[0-9a-fA-F:]+\\]|[0-9.]+):[0-9]{1,5}$' } },
    timeoutMs: integer(100, 60_000),
    negativeTtlSeconds: integer(0, 86_400),
    maxTtlSeconds: integer(0, 604_800),
    lists: {
      type: 'array',
      maxItems: 64,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['zone'],
        properties: {
          zone: { type: 'string', pattern: '^[a-z0-9_-]+(\\.[a-z0-9_-]+)+$' },
          codes: { type: 'object', additionalProperties: { type: 'string', maxLength: 200 } },
          dailyBudget: integer(0, 1_000_000_000),
          category: { type: 'string', pattern: '^[a-z][a-z0-9_-]{0,31}$' },
        },
      },
    },
  }),
});
