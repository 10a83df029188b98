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
    /** Address IMPs are told to use for this node (in the peer list of the other node); empty means `host`. @defaultValue '' */
    advertiseHost: string;
  };
  replication: {
    /** Address the replication listener (mutual TLS) binds to. @defaultValue '127.0.0.1' */
    host: string;
    /** TCP port of the replication listener; 0 picks a free port. @defaultValue 7301 */
    port: number;
    /** Address the peer is told to connect to; empty means `host`. @defaultValue '' */
    advertiseHost: string;
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
  feeds: {
    /** Refresh interval of a feed added without one, in seconds; 0 means manual refresh only. @defaultValue 3600 */
    refreshSeconds: number;
    /** Size limit of a feed added without one, in bytes. @defaultValue 67108864 */
    maxBytes: number;
    /** Fetch timeout of a feed added without one, in milliseconds. @defaultValue 30000 */
    timeoutMs: number;
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
  replication: { host: '127.0.0.1', port: 7301, advertiseHost: '' },
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
  feeds: { refreshSeconds: 3600, maxBytes: 64 * 1024 * 1024, timeoutMs: 30_000 },
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
  feeds: section({
    refreshSeconds: integer(0, 604_800),
    maxBytes: integer(1, 1_073_741_824),
    timeoutMs: integer(100, 600_000),
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
