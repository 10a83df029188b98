/**
 * The repository daemon's parts and their order: index, policy, TLS material, IMP listener, control
 * socket. `start` opens them in that order and `stop` closes them in reverse, each step bounded.
 */

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { stat } from 'node:fs/promises';
import { join } from 'node:path';

import { resolveUnder, type CdrConfig } from '../common/config.js';
import { CdrError } from '../common/errors.js';
import { Lifecycle } from '../common/lifecycle.js';
import { runShutdownStep } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import type { SdNotifier } from '../common/sd-notify.js';
import { SOFTWARE_VERSION } from '../common/version.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { ControlServer } from './control-server.js';
import { HybridLogicalClock } from './hlc.js';
import { ImpServer } from './imp-server.js';
import { ReputationIndex } from './reputation-index.js';
import { IndexStore } from './store.js';
import { Replicator } from './replication/replicator.js';
import { SubscriptionRegistry } from './subscriptions.js';
import { ExternalSources } from './feeds/external-sources.js';
import { checkPeer, loadPeer, loadReplicationIdentity, removePeer, savePeer, type PeerRecord, type ReplicationIdentityFiles } from './peer.js';
import { defaultServerNames, loadServerTlsMaterial } from './tls-material.js';

/** Interval between purges of expired counter buckets. */
const PURGE_INTERVAL_MS = 3_600_000;

export class Repository {
  readonly lifecycle = new Lifecycle('repository');
  readonly #config: Readonly<CdrConfig>;
  readonly #log: Logger;
  #store: IndexStore | undefined;
  #index: ReputationIndex | undefined;
  #impServer: ImpServer | undefined;
  #control: ControlServer | undefined;
  #nodeId = '';
  #startedMs = 0;
  #impAddress = '';
  #purgeTimer: NodeJS.Timeout | undefined;
  #replicationIdentity: ReplicationIdentityFiles | undefined;
  #clock!: HybridLogicalClock;
  #peer: PeerRecord | undefined;
  /** This node's IMP CA certificate (PEM). */
  #impCaPem = '';
  #replicator: Replicator | undefined;
  #replicationAddress = '';
  #purging: Promise<void> | undefined;
  readonly #notifier: SdNotifier | undefined;
  #external: ExternalSources | undefined;

  /** `notifier` receives `STATUS=` and `EXTEND_TIMEOUT_USEC=` during `start`; main sends `READY=1`. */
  constructor(config: Readonly<CdrConfig>, log: Logger, notifier?: SdNotifier) {
    this.#config = config;
    this.#log = log;
    this.#notifier = notifier;
  }

  get nodeId(): string {
    return this.#nodeId;
  }

  get impAddress(): string {
    return this.#impAddress;
  }

  get controlSocketPath(): string {
    return resolveUnder(this.#config.paths.run, this.#config.control.socket);
  }

  get indexPath(): string {
    return join(this.#config.paths.state, 'index');
  }

  async start(): Promise<void> {
    this.lifecycle.moveTo('opening');
    const config = this.#config;
    mkdirSync(config.paths.state, { recursive: true, mode: 0o750 });

    this.#nodeId = config.node.id || loadOrCreateNodeId(config.paths.state);
    this.#clock = new HybridLogicalClock(this.#nodeId);
    const log = this.#log;

    this.#store = await this.#longStep('opening index', () =>
      IndexStore.open({ location: this.indexPath, nodeId: this.#nodeId, bucketSeconds: config.index.bucketSeconds, log }),
    );
    const store = this.#store;
    this.#index = await this.#longStep('loading reputation policy', () => ReputationIndex.create({
      store,
      log,
      bucketSeconds: config.index.bucketSeconds,
      retentionDays: config.index.retentionDays,
      cacheMaxEntries: config.cache.maxEntries,
      cacheMaxAgeMs: config.cache.maxAgeMs,
      clock: this.#clock,
    }));

    const tlsDir = resolveUnder(config.paths.state, config.tls.dir);
    const tls = await this.#longStep('loading TLS material', () => loadServerTlsMaterial(tlsDir, {
      generate: config.tls.generate,
      serverValidDays: config.tls.serverValidDays,
      serverNames: defaultServerNames(config.imp.host),
    }));
    if (tls.generated.length > 0) {
      log.info({ dir: tlsDir, generated: tls.generated }, 'generated TLS material');
    }

    this.#impCaPem = tls.caPem;
    this.#replicationIdentity = await loadReplicationIdentity(tlsDir, this.#nodeId);
    this.#peer = loadPeer(config.paths.state);

    this.#external = await ExternalSources.start(config, this.#store, this.#index, { nodeId: this.#nodeId, clock: this.#clock, peerNodeId: () => this.#peer?.nodeId }, log);
    const feeds = this.#external.feeds;

    const subscriptions = new SubscriptionRegistry(log);
    const index = this.#index;
    index.onChange = (touched) => {
      subscriptions.notify(index, touched).catch((error: unknown) => log.error({ err: error }, 'pushing changes failed'));
    };

    this.#notifier?.status('opening listeners');
    this.#replicator = new Replicator({
      store: this.#store,
      identity: this.#replicationIdentity,
      nodeId: this.#nodeId,
      log,
      logRetentionEntries: config.replication.logRetentionEntries,
      onApplied: ({ policyChanged, feedIds }) => {
        if (policyChanged) {
          index.reloadPolicy().catch((error: unknown) => log.error({ err: error }, 'loading the replicated policy failed'));
        }
        if (feedIds.size > 0) {
          void feeds.applyReplicated(feedIds);
        }
      },
      onStateChange: (state) => log.info({ state, peer: this.#peer?.nodeId }, 'replication state changed'),
    });
    const replicationBound = await this.#replicator.listen(config.replication.host, config.replication.port);
    this.#replicationAddress = `${replicationBound.host}:${replicationBound.port}`;
    await this.#replicator.setPeer(this.#peer);

    const peers = () =>
      this.#peer && this.#peer.impHost ? [{ nodeId: this.#peer.nodeId, host: this.#peer.impHost, port: this.#peer.impPort }] : [];
    this.#impServer = new ImpServer(tls, { config, index, subscriptions, nodeId: this.#nodeId, peers }, log);
    this.#impServer.trustPeerCa(this.#peer?.impCaPem ?? '');
    const bound = await this.#impServer.listen(config.imp.host, config.imp.port);
    this.#impAddress = `${bound.host}:${bound.port}`;

    this.#control = new ControlServer(
      {
        index,
        tlsDir,
        clientValidDays: config.tls.clientValidDays,
        maxLookupKeys: config.limits.maxLookupKeys,
        status: async () => this.status(),
        identity: () => this.replicationIdentity(),
        pairStatus: () => this.pairStatus(),
        setPeer: async (peer) => this.setPeer(peer),
        clearPeer: async () => this.clearPeer(),
        peerCaPem: () => this.#peer?.impCaPem ?? '',
        feeds: this.#external.feeds,
        feedDefaults: config.feeds,
        dnsblStatus: () => this.#external!.dnsblStatus(),
        auditEntries: (limit) => store.recentAuditEntries(limit),
      },
      log,
    );
    await this.#control.listen(this.controlSocketPath);

    this.#purgeTimer = setInterval(() => this.purgeExpired(), PURGE_INTERVAL_MS);
    this.#purgeTimer.unref();

    this.#startedMs = Date.now();
    this.lifecycle.moveTo('open');
    log.info(
      {
        nodeId: this.#nodeId,
        imp: this.#impAddress,
        replication: this.#replicationAddress,
        control: this.controlSocketPath,
        dns: this.#external.dnsAddress,
        version: SOFTWARE_VERSION,
      },
      'repository ready',
    );
  }

  /** Runs one start step, asking systemd for more start time while it runs. */
  #longStep<T>(status: string, action: () => Promise<T>): Promise<T> {
    if (!this.#notifier) {
      return action();
    }
    return this.#notifier.extendWhile(status, this.#config.supervision.extendTimeoutMs, action);
  }

  /**
   * Checks that the daemon can serve: open, both listeners listening, the control socket file present
   * (cdrctl cannot connect when it was deleted) and the index answering a read. Resolves to undefined
   * when healthy, or to the first failure. The watchdog pings systemd only while this passes.
   */
  async checkHealth(): Promise<string | undefined> {
    if (this.lifecycle.state !== 'open') {
      return `repository is ${this.lifecycle.state}`;
    }
    if (!this.#impServer?.listening) {
      return 'IMP listener is not listening';
    }
    if (!this.#control?.listening) {
      return 'control socket is not listening';
    }
    try {
      if (!(await stat(this.controlSocketPath)).isSocket()) {
        return `control socket ${this.controlSocketPath} is not a socket`;
      }
    } catch (error) {
      return `control socket ${this.controlSocketPath} is missing: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`;
    }
    try {
      await this.#store?.getPolicy();
    } catch (error) {
      return `index read failed: ${(error as Error).message}`;
    }
    return undefined;
  }

  /** Returns one line for `systemctl status`: listener, clients and traffic. */
  statusLine(): string {
    const clients = [...(this.#impServer?.connections ?? [])].filter((connection) => connection.identity).length;
    const traffic = this.#impServer?.traffic;
    return `serving IMPs on ${this.#impAddress}; ${clients} clients, ${traffic?.observations ?? 0} observations, ${traffic?.lookups ?? 0} lookups`;
  }

  /** Closes the parts in reverse order; each step gets `shutdown.timeoutMs` before the next is forced. */
  async stop(): Promise<void> {
    if (this.lifecycle.state === 'closing' || this.lifecycle.state === 'closed') {
      return;
    }
    this.lifecycle.moveTo('closing');
    const timeoutMs = this.#config.shutdown.timeoutMs;
    const log = this.#log;

    clearInterval(this.#purgeTimer);
    await runShutdownStep(log, 'close IMP listener and drain requests', timeoutMs, () => this.#impServer?.close(timeoutMs));
    await runShutdownStep(log, 'close control socket', timeoutMs, () => this.#control?.close());
    await runShutdownStep(log, 'stop replication', timeoutMs, () => this.#replicator?.close());
    await runShutdownStep(log, 'stop feeds and the DNS front', timeoutMs, () => this.#external?.stop());
    await runShutdownStep(log, 'finish bucket purge', timeoutMs, () => this.#purging);
    await runShutdownStep(log, 'flush and close index', timeoutMs, () => this.#store?.close());
    this.lifecycle.moveTo('closed');
  }

  /**
   * Deletes counter buckets that ended before the retention window. Runs every PURGE_INTERVAL_MS; a run
   * still going when the next is due makes that one a no-op.
   */
  purgeExpired(): Promise<void> {
    if (this.#purging || !this.#store || this.lifecycle.state !== 'open') {
      return this.#purging ?? Promise.resolve();
    }
    const { retentionDays, bucketSeconds } = this.#config.index;
    const beforeSeconds = Math.floor((Date.now() / 1000 - retentionDays * 86_400) / bucketSeconds) * bucketSeconds;
    const started = Date.now();
    this.#purging = this.#store
      .purgeBuckets(beforeSeconds)
      .then((deleted) => {
        this.#log.info({ deleted, beforeSeconds, ms: Date.now() - started }, 'purged expired counter buckets');
      })
      .catch((error: unknown) => {
        this.#log.error({ err: error }, 'purging expired counter buckets failed; retrying at the next interval');
      })
      .finally(() => {
        this.#purging = undefined;
      });
    return this.#purging;
  }

  /** This node's replication endpoint and pinned certificate, as the pairing service sends it to the peer. */
  replicationIdentity(): impcdr.v1.IReplicationIdentity {
    const config = this.#config;
    return {
      nodeId: this.#nodeId,
      certificatePem: this.#replicationIdentity?.certificatePem ?? '',
      fingerprintSha256: this.#replicationIdentity?.fingerprint ?? '',
      host: config.replication.advertiseHost || config.replication.host,
      port: Number(this.#replicationAddress.split(':').pop() || config.replication.port),
      impHost: config.imp.advertiseHost || config.imp.host,
      impPort: Number(this.#impAddress.split(':').pop() ?? config.imp.port),
      impCaPem: this.#impCaPem,
    };
  }

  pairStatus(): impcdr.v1.IPairStatus {
    const replication = this.#replicator?.status();
    return {
      self: this.replicationIdentity(),
      peer: this.#peer ?? null,
      replicationState: replication?.state ?? 'unpaired',
      lastContactMs: replication?.lastContactMs ?? 0,
      lagMs: replication?.lagMs ?? 0,
      backlog: replication?.backlog ?? 0,
      lagP50Ms: replication?.lagP50Ms ?? 0,
      lagP99Ms: replication?.lagP99Ms ?? 0,
      entriesApplied: replication?.entriesApplied ?? 0,
    };
  }

  /** Stores `record` as the peer, replacing any previous one. @throws CdrError `ERR_PEER_INVALID` */
  async setPeer(record: impcdr.v1.IPeerRecord): Promise<void> {
    const peer = checkPeer({
      nodeId: record.nodeId ?? '',
      host: record.host ?? '',
      replicationPort: Number(record.replicationPort ?? 0),
      certificatePem: record.certificatePem ?? '',
      sshHostKeyFingerprint: record.sshHostKeyFingerprint ?? '',
      pairedMs: Number(record.pairedMs ?? 0),
      impHost: record.impHost ?? '',
      impPort: Number(record.impPort ?? 0),
      impCaPem: record.impCaPem ?? '',
    });
    if (peer.nodeId === this.#nodeId) {
      throw new CdrError('ERR_PEER_INVALID', `peer node id ${peer.nodeId} is this node's own id; pair with the other node`);
    }
    savePeer(this.#config.paths.state, peer);
    this.#peer = peer;
    this.#impServer?.trustPeerCa(peer.impCaPem);
    await this.#replicator?.setPeer(peer);
    this.#external?.feeds.rescheduleAll();
    this.#log.info({ peer: peer.nodeId, host: peer.host, port: peer.replicationPort, sshFingerprint: peer.sshHostKeyFingerprint }, 'peer stored');
  }

  async clearPeer(): Promise<void> {
    const previous = this.#peer;
    removePeer(this.#config.paths.state);
    this.#peer = undefined;
    this.#impServer?.trustPeerCa('');
    await this.#replicator?.setPeer(undefined);
    this.#external?.feeds.rescheduleAll();
    this.#log.info({ peer: previous?.nodeId }, 'peer removed');
  }

  /** Returns the node's status, as `cdrctl status` shows it. */
  status(): impcdr.v1.IStatus {
    const traffic = this.#impServer?.traffic;
    const cache = this.#index?.cacheStats();
    const objects = this.#store?.objectCounts();
    return {
      nodeId: this.#nodeId,
      softwareVersion: SOFTWARE_VERSION,
      role: this.#peer ? 'paired' : 'standalone',
      state: this.lifecycle.state,
      startedMs: this.#startedMs,
      uptimeSeconds: this.#startedMs ? Math.floor((Date.now() - this.#startedMs) / 1000) : 0,
      impListen: this.#impAddress,
      policyVersion: this.#index?.policy.version ?? 0,
      objects: objects ?? {},
      traffic: {
        observeBatches: traffic?.observeBatches ?? 0,
        observations: traffic?.observations ?? 0,
        duplicateBatches: traffic?.duplicateBatches ?? 0,
        lookups: traffic?.lookups ?? 0,
        lookupKeys: traffic?.lookupKeys ?? 0,
        errors: traffic?.errors ?? 0,
        cacheHits: cache?.hits ?? 0,
        cacheMisses: cache?.misses ?? 0,
      },
      clients: [...(this.#impServer?.connections ?? [])]
        .filter((connection) => connection.identity)
        .map((connection) => ({
          connectionId: connection.id,
          impId: connection.identity!.impId,
          clusterId: connection.identity!.clusterId,
          address: connection.address,
          model: connection.identity!.model,
          oosVersion: connection.identity!.oosVersion,
          connectedSinceMs: connection.connectedSinceMs,
          observations: connection.observations,
          lookups: connection.lookups,
        })),
      indexBytes: folderBytes(this.indexPath),
    };
  }
}

/** Reads the node id kept in the state folder, creating one on first start. Node ids never replicate. */
function loadOrCreateNodeId(stateDir: string): string {
  const path = join(stateDir, 'node-id');
  if (existsSync(path)) {
    return readFileSync(path, 'utf8').trim();
  }
  const nodeId = `node-${randomBytes(4).toString('hex')}`;
  writeFileSync(path, `${nodeId}\n`, { flag: 'wx', mode: 0o644 });
  return nodeId;
}

function folderBytes(path: string): number {
  try {
    return readdirSync(path).reduce((sum, name) => sum + statSync(join(path, name)).size, 0);
  } catch {
    return 0;
  }
}
