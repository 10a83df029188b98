/**
 * The pairing SSH server (ssh2). It accepts two SSH users and nothing else:
 *
 * - "cdr-pair": publickey with the joining node's host key (a verified signature gives partial
 *   success), then password with the pairing code. The password step succeeds whatever the code,
 *   because SSH itself can only report a failure without its reason. The verdict (wrong code, no
 *   window, expired, locked) reaches the joining node as an error frame inside the channel, and a
 *   rejected connection can do nothing else before it is closed.
 * - "cdr-unpair": publickey with the host key this node pinned for its peer.
 *
 * Other methods (none, keyboard-interactive, hostbased) are rejected with the list above. Only a
 * "session" channel with the "cdr-pairing" subsystem is accepted; shells, commands and forwarding are
 * rejected.
 */

import { randomBytes } from 'node:crypto';

import ssh2 from 'ssh2';
import type { AuthContext, Connection, PublicKeyAuthContext, Session } from 'ssh2';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { fingerprintOf, type HostKey } from './host-key.js';
import { PAIRING_SUBSYSTEM, PeerChannel } from './peer-channel.js';
import { removePeerEndpoint, savePeerEndpoint, type RepositoryLink } from './repository-link.js';
import type { CodeVerdict, PairingWindow } from './window.js';

export const PAIR_USER = 'cdr-pair';
export const UNPAIR_USER = 'cdr-unpair';

/** Authentication requests one connection may send before it is closed. */
const MAX_AUTH_REQUESTS = 8;

/** Connections served at once; pairing needs one, and more are closed by the listener. */
const MAX_CONNECTIONS = 16;

export interface PairingServerContext {
  hostKey: HostKey;
  window: PairingWindow;
  repository: RepositoryLink;
  /** File of the peer's pairing endpoint, written when a pairing completes. */
  endpointPath: string;
  /** Time a connection has to start the pairing subsystem, and each side has to send its next PeerFrame, in milliseconds. */
  timeoutMs: number;
  /** Runs `action` unless another pairing or unpairing runs. @throws CdrError `ERR_PAIR_BUSY` */
  exclusive<T>(action: () => Promise<T>): Promise<T>;
}

/** Authentication state of one connection. */
interface ConnectionAuth {
  user: typeof PAIR_USER | typeof UNPAIR_USER | undefined;
  clientKeyFingerprint: string | undefined;
  verdict: CodeVerdict | undefined;
  requests: number;
}

export class PairingSshServer {
  readonly #server: ssh2.Server;
  readonly #context: PairingServerContext;
  readonly #log: Logger;
  readonly #connections = new Set<Connection>();

  constructor(context: PairingServerContext, log: Logger) {
    this.#context = context;
    this.#log = log.child({ component: 'ssh' });
    this.#server = new ssh2.Server({ hostKeys: [context.hostKey.privateKey], ident: 'imp-cdr-pairing' }, (connection, info) =>
      this.#accept(connection, info),
    );
    this.#server.maxConnections = MAX_CONNECTIONS;
    this.#server.on('error', (error: Error) => this.#log.error({ err: error }, 'pairing SSH listener error'));
  }

  /** Listens on `host`:`port` (0 picks a free port) and returns the bound port. */
  listen(host: string, port: number): Promise<number> {
    return new Promise((resolveListen, rejectListen) => {
      this.#server.once('error', rejectListen);
      this.#server.listen(port, host, () => {
        this.#server.off('error', rejectListen);
        resolveListen((this.#server.address() as { port: number }).port);
      });
    });
  }

  async close(): Promise<void> {
    const closed = new Promise<void>((resolveClosed) => this.#server.close(() => resolveClosed()));
    for (const connection of this.#connections) {
      connection.end();
    }
    await closed;
  }

  #accept(connection: Connection, info: ssh2.ClientInfo): void {
    const log = this.#log.child({ connection: randomBytes(4).toString('hex'), address: info.ip });
    const auth: ConnectionAuth = { user: undefined, clientKeyFingerprint: undefined, verdict: undefined, requests: 0 };
    this.#connections.add(connection);
    log.info({ client: info.header.versions.software }, 'pairing connection opened');

    // A connection has `timeoutMs` to authenticate and start the pairing subsystem; after that, each
    // PeerFrame has its own timeout.
    const startTimer = setTimeout(() => {
      log.warn({ timeoutMs: this.#context.timeoutMs }, 'closing pairing connection: no pairing subsystem started in time');
      connection.end();
    }, this.#context.timeoutMs);
    startTimer.unref();

    connection.on('error', (error: Error) => log.warn({ err: error }, 'pairing connection error'));
    connection.on('close', () => {
      clearTimeout(startTimer);
      this.#connections.delete(connection);
      log.info('pairing connection closed');
    });
    connection.on('authentication', (context) => {
      auth.requests += 1;
      if (auth.requests > MAX_AUTH_REQUESTS) {
        log.warn({ requests: auth.requests }, 'closing pairing connection: too many authentication requests');
        connection.end();
        return;
      }
      this.#authenticate(context, auth, log).catch((error: unknown) => {
        log.error({ err: error }, 'authentication check failed');
        context.reject();
      });
    });
    connection.on('ready', () => {
      log.info({ user: auth.user, clientKey: auth.clientKeyFingerprint }, 'pairing client authenticated');
    });
    connection.on('session', (acceptSession) => {
      const session = acceptSession();
      this.#serveSession(session, connection, auth, info.ip, log, () => clearTimeout(startTimer));
    });
    connection.on('request', (_accept, reject, name) => {
      log.warn({ request: name }, 'rejected global request');
      reject?.();
    });
    connection.on('tcpip', (_accept, reject) => reject());
    connection.on('openssh.streamlocal', (_accept, reject) => reject());
  }

  async #authenticate(context: AuthContext, auth: ConnectionAuth, log: Logger): Promise<void> {
    const allowed: Array<'publickey' | 'password'> = ['publickey', 'password'];

    if (context.username === PAIR_USER && context.method === 'publickey') {
      const fingerprint = verifiedKeyFingerprint(context);
      if (fingerprint === 'query') {
        context.accept();
      } else if (fingerprint) {
        auth.clientKeyFingerprint = fingerprint;
        context.reject(['password'], true);
      } else {
        log.warn({ method: context.method }, 'rejected publickey: bad signature');
        context.reject(allowed);
      }
      return;
    }

    if (context.username === PAIR_USER && context.method === 'password') {
      if (!auth.clientKeyFingerprint || auth.verdict) {
        context.reject(auth.verdict ? [] : ['publickey']);
        return;
      }
      // The code goes only to the window, which compares digests; it is never logged.
      auth.verdict = this.#context.window.verify(context.password);
      auth.user = PAIR_USER;
      log.info({ accepted: auth.verdict.accepted, code: auth.verdict.accepted ? undefined : auth.verdict.code }, 'pairing code checked');
      context.accept();
      return;
    }

    if (context.username === UNPAIR_USER && context.method === 'publickey') {
      const status = await this.#context.repository.pairStatus();
      const pinned = status.peer?.sshHostKeyFingerprint ?? '';
      const offered = fingerprintOf(context.key.data);
      if (!pinned || offered !== pinned) {
        log.warn({ offered, pinned: pinned || undefined }, 'rejected unpair key: not the pinned peer key');
        context.reject(['publickey']);
        return;
      }
      const fingerprint = verifiedKeyFingerprint(context);
      if (fingerprint === 'query') {
        context.accept();
      } else if (fingerprint === pinned) {
        auth.user = UNPAIR_USER;
        auth.clientKeyFingerprint = fingerprint;
        context.accept();
      } else {
        context.reject(['publickey']);
      }
      return;
    }

    log.info({ user: context.username, method: context.method }, 'rejected authentication method');
    context.reject(allowed);
  }

  #serveSession(session: Session, connection: Connection, auth: ConnectionAuth, address: string, log: Logger, started: () => void): void {
    session.on('error', (error: Error) => log.warn({ err: error }, 'pairing session error'));
    session.on('subsystem', (acceptSubsystem, rejectSubsystem, request) => {
      if (request.name !== PAIRING_SUBSYSTEM || !auth.user) {
        log.warn({ subsystem: request.name }, 'rejected subsystem');
        rejectSubsystem();
        return;
      }
      const stream = acceptSubsystem();
      started();
      stream.on('error', (error: Error) => log.warn({ err: error }, 'pairing channel error'));
      const channel = new PeerChannel(stream);
      const exchange = auth.user === PAIR_USER ? this.#pair(channel, auth, address, log) : this.#unpair(channel, log);
      exchange
        .catch((error: unknown) => {
          const failure = error instanceof CdrError ? error : new CdrError('ERR_PAIR_PROTOCOL', (error as Error).message, { cause: error });
          log.warn({ err: failure, code: failure.code }, 'pairing exchange failed; nothing stored');
          channel.send({ error: { code: failure.code, message: failure.message } });
        })
        .finally(() => {
          channel.end();
          connection.end();
        });
    });
    for (const name of ['pty', 'shell', 'exec', 'env', 'x11', 'auth-agent', 'sftp', 'window-change', 'signal'] as const) {
      session.on(name as 'shell', (_accept: unknown, reject?: () => void) => {
        log.warn({ request: name }, 'rejected session request');
        reject?.();
      });
    }
  }

  /** Runs the window side of a pairing; see PeerFrame in pairing.proto for the order of frames. */
  async #pair(channel: PeerChannel, auth: ConnectionAuth, address: string, log: Logger): Promise<void> {
    const verdict = auth.verdict!;
    if (!verdict.accepted) {
      throw new CdrError(verdict.code, verdict.message);
    }
    if (auth.clientKeyFingerprint === this.#context.hostKey.fingerprint) {
      throw new CdrError('ERR_PAIR_SELF', 'the joining node has this node\'s host key; run "cdrctl pair join" on the other node');
    }

    await this.#context.exclusive(async () => {
      // Another connection may have completed a pairing with the same code since this one authenticated.
      if (this.#context.window.state() !== 'open') {
        throw new CdrError('ERR_PAIR_WINDOW_CLOSED', 'the pairing window closed before this pairing started; run "cdrctl pair open" again');
      }
      const repository = this.#context.repository;
      const own = await repository.identity();
      channel.send({ offer: { identity: own } });

      const reply = await channel.next(this.#context.timeoutMs);
      if (reply.error) {
        log.warn({ code: reply.error.code }, 'joining node aborted the pairing');
        return;
      }
      const peer = reply.confirm?.identity;
      if (!peer) {
        throw new CdrError('ERR_PAIR_PROTOCOL', `expected a confirm frame, got ${reply.body ?? 'an empty frame'}`);
      }
      if (peer.nodeId === own.nodeId) {
        throw new CdrError('ERR_PAIR_SELF', `the joining node has this node's id ${own.nodeId}; give each node its own id`);
      }
      const pairingPort = reply.confirm!.pairingPort ?? 0;
      if (pairingPort < 1 || pairingPort > 65535) {
        throw new CdrError('ERR_PAIR_PROTOCOL', `the joining node sent pairing port ${pairingPort}, expected 1 to 65535`);
      }

      await repository.setPeer(peerRecord(peer, auth.clientKeyFingerprint!));
      savePeerEndpoint(this.#context.endpointPath, { nodeId: peer.nodeId ?? '', host: address, port: pairingPort });
      this.#context.window.close();
      channel.send({ done: {} });
      log.info({ peer: peer.nodeId, peerKey: auth.clientKeyFingerprint }, 'paired; pairing window closed');
    });
  }

  /** Forgets the peer that authenticated with its pinned key. */
  async #unpair(channel: PeerChannel, log: Logger): Promise<void> {
    const request = await channel.next(this.#context.timeoutMs);
    if (!request.unpair) {
      throw new CdrError('ERR_PAIR_PROTOCOL', `expected an unpair frame, got ${request.body ?? 'an empty frame'}`);
    }

    await this.#context.exclusive(async () => {
      const status = await this.#context.repository.pairStatus();
      if (status.peer?.nodeId !== request.unpair!.nodeId) {
        throw new CdrError('ERR_PAIR_NOT_PAIRED', `this node is not paired with ${request.unpair!.nodeId}`);
      }
      await this.#context.repository.clearPeer();
      removePeerEndpoint(this.#context.endpointPath);
      channel.send({ done: {} });
      log.info({ peer: request.unpair!.nodeId }, 'unpaired at the request of the peer');
    });
  }
}

/** Builds the record this node stores for a peer that sent `identity` and authenticated with `sshFingerprint`. */
export function peerRecord(identity: impcdr.v1.IReplicationIdentity, sshFingerprint: string): impcdr.v1.IPeerRecord {
  return {
    nodeId: identity.nodeId ?? '',
    host: identity.host ?? '',
    replicationPort: identity.port ?? 0,
    certificatePem: identity.certificatePem ?? '',
    sshHostKeyFingerprint: sshFingerprint,
    pairedMs: Date.now(),
    impHost: identity.impHost ?? '',
    impPort: identity.impPort ?? 0,
    impCaPem: identity.impCaPem ?? '',
  };
}

/**
 * Checks a publickey request: "query" when the client only asks whether the key is acceptable (no
 * signature yet), the key's fingerprint when the signature verifies, undefined otherwise.
 */
function verifiedKeyFingerprint(context: PublicKeyAuthContext): string | 'query' | undefined {
  if (!context.signature || !context.blob) {
    return 'query';
  }
  const key = ssh2.utils.parseKey(`${context.key.algo} ${context.key.data.toString('base64')}`);
  if (key instanceof Error || Array.isArray(key)) {
    return undefined;
  }
  return key.verify(context.blob, context.signature, context.hashAlgo) === true ? fingerprintOf(context.key.data) : undefined;
}
