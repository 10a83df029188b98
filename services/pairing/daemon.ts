/**
 * imp-cdr-pairing: the pairing window, the SSH server the peer joins through, and the joining and
 * unpairing this node starts at the request of cdrctl. Peer records are stored by the repository,
 * through its control socket; this daemon keeps only its host key and the peer's pairing endpoint.
 */

import { resolveUnder, type CdrConfig } from '../common/config.js';
import { CdrError } from '../common/errors.js';
import { Lifecycle, runShutdownStep } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { checkFingerprint, loadOrCreateHostKey, type HostKey } from './host-key.js';
import { LocalServer } from './local-server.js';
import { errorFromFrame } from './peer-channel.js';
import { loadPeerEndpoint, removePeerEndpoint, RepositoryLink, savePeerEndpoint } from './repository-link.js';
import { connectPinned, probeHostKey } from './ssh-client.js';
import { PAIR_USER, PairingSshServer, peerRecord, UNPAIR_USER } from './ssh-server.js';
import { PairingWindow } from './window.js';

export class PairingDaemon {
  readonly lifecycle = new Lifecycle('pairing');
  readonly #config: Readonly<CdrConfig>;
  readonly #log: Logger;
  readonly #window = new PairingWindow();
  readonly #repository: RepositoryLink;
  readonly #endpointPath: string;
  #hostKey: HostKey | undefined;
  #ssh: PairingSshServer | undefined;
  #local: LocalServer | undefined;
  #port = 0;
  #busy = false;

  constructor(config: Readonly<CdrConfig>, log: Logger) {
    this.#config = config;
    this.#log = log;
    this.#repository = new RepositoryLink(resolveUnder(config.paths.run, config.control.socket));
    this.#endpointPath = resolveUnder(config.paths.state, 'pairing/peer-endpoint.json');
  }

  get localSocketPath(): string {
    return resolveUnder(this.#config.paths.run, this.#config.pairing.socket);
  }

  get listen(): string {
    return `${this.#config.pairing.host}:${this.#port}`;
  }

  async start(): Promise<void> {
    this.lifecycle.moveTo('opening');
    const config = this.#config.pairing;
    const hostKeyPath = resolveUnder(this.#config.paths.state, config.hostKey);
    const hostKey = loadOrCreateHostKey(hostKeyPath);
    if (hostKey.created) {
      this.#log.info({ path: hostKeyPath, fingerprint: hostKey.fingerprint }, 'created pairing host key');
    }
    this.#hostKey = hostKey;

    this.#ssh = new PairingSshServer(
      {
        hostKey,
        window: this.#window,
        repository: this.#repository,
        endpointPath: this.#endpointPath,
        timeoutMs: config.connectTimeoutMs,
        exclusive: (action) => this.#exclusive(action),
      },
      this.#log,
    );
    this.#port = await this.#ssh.listen(config.host, config.port);

    this.#local = new LocalServer(this, this.#log);
    await this.#local.listen(this.localSocketPath);

    this.lifecycle.moveTo('open');
    this.#log.info({ listen: this.listen, socket: this.localSocketPath, fingerprint: hostKey.fingerprint }, 'pairing ready');
  }

  async stop(): Promise<void> {
    if (this.lifecycle.state === 'closing' || this.lifecycle.state === 'closed') return;
    this.lifecycle.moveTo('closing');
    const timeoutMs = this.#config.shutdown.timeoutMs;
    await runShutdownStep(this.#log, 'close pairing socket', timeoutMs, () => this.#local?.close());
    await runShutdownStep(this.#log, 'close pairing SSH listener', timeoutMs, () => this.#ssh?.close());
    this.#window.close();
    this.lifecycle.moveTo('closed');
  }

  /** Opens a pairing window of `seconds` (0: the configured default) and returns its code once. */
  openWindow(seconds: number): impcdr.v1.IWindowOpened {
    const config = this.#config.pairing;
    const duration = seconds || config.windowSeconds;
    if (!Number.isInteger(duration) || duration < 1 || duration > 3600) {
      throw new CdrError('ERR_CLI_USAGE', `a pairing window lasts 1 to 3600 seconds, got ${duration}`);
    }
    const { code, expiresMs } = this.#window.open(duration, config.maxAttempts);
    this.#log.info({ seconds: duration, expires: new Date(expiresMs).toISOString(), maxAttempts: config.maxAttempts }, 'pairing window opened');
    return { code, hostKeyFingerprint: this.#hostKey!.fingerprint, expiresMs, listen: this.listen, maxAttempts: config.maxAttempts };
  }

  closeWindow(): impcdr.v1.IDaemonStatus {
    this.#window.close();
    this.#log.info('pairing window closed');
    return this.status();
  }

  status(): impcdr.v1.IDaemonStatus {
    const state = this.#window.state();
    return {
      hostKeyFingerprint: this.#hostKey!.fingerprint,
      listen: this.listen,
      windowState: state,
      expiresMs: state === 'closed' ? 0 : this.#window.expiresMs,
      attempts: this.#window.attempts,
      maxAttempts: this.#config.pairing.maxAttempts,
    };
  }

  probe(host: string, port: number): Promise<string> {
    return probeHostKey(host, port, this.#config.pairing.connectTimeoutMs, this.#log);
  }

  /**
   * Pairs with the node at `host`:`port`, whose host key must have `fingerprint`, using `code`. This
   * node stores the other node first; when the other node then fails to store this one, the previous
   * peer record here is put back.
   */
  async join(host: string, port: number, fingerprint: string, code: string): Promise<impcdr.v1.IPairStatus> {
    const expected = checkFingerprint(fingerprint);
    const log = this.#log.child({ join: `${host}:${port}` });

    return this.#exclusive(async () => {
      const own = await this.#repository.identity();
      const previous = (await this.#repository.pairStatus()).peer ?? undefined;
      const connection = await connectPinned({
        host,
        port,
        expectedFingerprint: expected,
        username: PAIR_USER,
        hostKey: this.#hostKey!,
        password: code,
        timeoutMs: this.#config.pairing.connectTimeoutMs,
        log,
      });

      try {
        const first = await connection.channel.next(this.#config.pairing.connectTimeoutMs);
        if (first.error) throw errorFromFrame(first.error);
        const peer = first.offer?.identity;
        if (!peer) throw new CdrError('ERR_PAIR_PROTOCOL', `expected an offer frame, got ${first.body ?? 'an empty frame'}`);
        if (peer.nodeId === own.nodeId) {
          connection.channel.send({ error: { code: 'ERR_PAIR_SELF', message: 'the joining node has the same node id' } });
          throw new CdrError('ERR_PAIR_SELF', `${host}:${port} is this node (${own.nodeId}); join the other node`);
        }

        try {
          await this.#repository.setPeer(peerRecord(peer, expected));
        } catch (error) {
          const code = error instanceof CdrError ? error.code : 'ERR_PAIR_PROTOCOL';
          connection.channel.send({ error: { code, message: 'the joining node could not store the peer record' } });
          throw error;
        }

        connection.channel.send({ confirm: { identity: own, pairingPort: this.#port } });
        const last = await connection.channel.next(this.#config.pairing.connectTimeoutMs).catch((error: unknown) => ({ failure: error }));
        if ('failure' in last || !last.done) {
          await this.#restore(previous, log);
          if ('failure' in last) throw last.failure;
          throw last.error ? errorFromFrame(last.error) : new CdrError('ERR_PAIR_PROTOCOL', `expected a done frame, got ${last.body ?? 'an empty frame'}`);
        }

        savePeerEndpoint(this.#endpointPath, { nodeId: peer.nodeId ?? '', host, port });
        log.info({ peer: peer.nodeId, fingerprint: expected }, 'paired');
        return this.#repository.pairStatus();
      } finally {
        connection.close();
      }
    });
  }

  /**
   * Forgets the peer on both nodes: the peer first, over SSH with its pinned host key, then here. With
   * `localOnly` the peer is not contacted, for a peer that is gone for good.
   */
  async unpair(localOnly: boolean): Promise<impcdr.v1.IPairStatus> {
    return this.#exclusive(async () => {
      const status = await this.#repository.pairStatus();
      const peer = status.peer;
      if (!peer?.nodeId) {
        throw new CdrError('ERR_PAIR_NOT_PAIRED', 'this node has no peer; nothing to unpair');
      }
      const log = this.#log.child({ peer: peer.nodeId });

      if (!localOnly) {
        const endpoint = loadPeerEndpoint(this.#endpointPath);
        if (!endpoint || endpoint.nodeId !== peer.nodeId) {
          throw new CdrError(
            'ERR_PAIR_UNREACHABLE',
            `the pairing address of ${peer.nodeId} is not known here; run "cdrctl unpair --local-only" on each node`,
          );
        }
        const connection = await connectPinned({
          host: endpoint.host,
          port: endpoint.port,
          expectedFingerprint: peer.sshHostKeyFingerprint ?? '',
          username: UNPAIR_USER,
          hostKey: this.#hostKey!,
          timeoutMs: this.#config.pairing.connectTimeoutMs,
          log,
        });
        try {
          const own = await this.#repository.identity();
          connection.channel.send({ unpair: { nodeId: own.nodeId } });
          const answer = await connection.channel.next(this.#config.pairing.connectTimeoutMs);
          if (answer.error) throw errorFromFrame(answer.error);
          if (!answer.done) throw new CdrError('ERR_PAIR_PROTOCOL', `expected a done frame, got ${answer.body ?? 'an empty frame'}`);
        } finally {
          connection.close();
        }
      }

      const cleared = await this.#repository.clearPeer();
      removePeerEndpoint(this.#endpointPath);
      log.info({ localOnly }, 'unpaired');
      return cleared;
    });
  }

  async #restore(previous: impcdr.v1.IPeerRecord | undefined, log: Logger): Promise<void> {
    try {
      if (previous?.nodeId) {
        await this.#repository.setPeer(previous);
      } else {
        await this.#repository.clearPeer();
      }
      log.info({ restored: previous?.nodeId ?? 'none' }, 'restored the previous peer record after a failed pairing');
    } catch (error) {
      log.error({ err: error }, 'restoring the previous peer record failed; check "cdrctl pair status"');
    }
  }

  async #exclusive<T>(action: () => Promise<T>): Promise<T> {
    if (this.#busy) {
      throw new CdrError('ERR_PAIR_BUSY', 'another pairing or unpairing is in progress on this node; try again when it ends');
    }
    this.#busy = true;
    try {
      return await action();
    } finally {
      this.#busy = false;
    }
  }
}
