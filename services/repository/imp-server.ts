/**
 * The native IMP listener: TLS 1.3 with client certificates from the repository's CA.
 */

import { randomBytes } from 'node:crypto';
import { createServer, type Server, type TLSSocket } from 'node:tls';

import { listenTcp } from '../common/listen.js';
import type { Logger } from '../common/logger.js';
import { ImpConnection, type ConnectionContext, type TrafficCounters } from './imp-connection.js';
import type { ServerTlsMaterial } from './tls-material.js';

export class ImpServer {
  readonly traffic: TrafficCounters = { observeBatches: 0, observations: 0, duplicateBatches: 0, lookups: 0, lookupKeys: 0, errors: 0 };
  readonly connections = new Set<ImpConnection>();
  readonly #server: Server;
  readonly #context: ConnectionContext;
  readonly #log: Logger;
  readonly #tls: ServerTlsMaterial;
  #shuttingDown = false;
  #tlsFailures = 0;

  constructor(tls: ServerTlsMaterial, context: Omit<ConnectionContext, 'traffic' | 'isShuttingDown'>, log: Logger) {
    this.#log = log.child({ component: 'imp-listener' });
    this.#context = { ...context, traffic: this.traffic, isShuttingDown: () => this.#shuttingDown };

    this.#tls = tls;
    this.#server = createServer({ ...this.#contextOptions(''), handshakeTimeout: context.config.imp.handshakeTimeoutMs });
    this.#server.on('secureConnection', (socket: TLSSocket) => this.#accept(socket));
    this.#server.on('tlsClientError', (error: Error & { code?: string }, socket: TLSSocket) => {
      this.traffic.errors += 1;
      this.#tlsFailures += 1;
      this.#log.warn({ err: error.message, code: error.code, remote: socket.remoteAddress }, 'TLS handshake failed');
    });
    this.#server.on('error', (error) => this.#log.error({ err: error }, 'listener error'));
  }

  /**
   * Accepts client certificates of the paired node's CA besides this node's own, so an IMP enrolled on
   * either node can fail over to the other. An empty PEM trusts this node's CA only.
   */
  trustPeerCa(peerCaPem: string): void {
    this.#server.setSecureContext(this.#contextOptions(peerCaPem));
    this.#log.info({ peerCa: peerCaPem !== '' }, 'trusted client CAs updated');
  }

  #contextOptions(peerCaPem: string) {
    return {
      key: this.#tls.keyPem,
      cert: this.#tls.certificatePem,
      ca: peerCaPem ? [this.#tls.caPem, peerCaPem] : [this.#tls.caPem],
      requestCert: true,
      rejectUnauthorized: true,
      minVersion: 'TLSv1.3' as const,
    };
  }

  /** Number of TLS handshakes that failed, for example on an unknown client certificate. */
  get tlsFailures(): number {
    return this.#tlsFailures;
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /** Starts listening and resolves with the bound address. */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    const bound = await listenTcp(this.#server, host, port);
    this.#log.info(bound, 'IMP listener ready');
    return bound;
  }

  /** Stops accepting, lets requests in flight finish for up to `timeoutMs`, then closes every connection. */
  async close(timeoutMs: number): Promise<void> {
    this.#shuttingDown = true;
    const closed = new Promise<void>((resolveClosed) => this.#server.close(() => resolveClosed()));
    await Promise.all([...this.connections].map((connection) => connection.shutdown(timeoutMs)));
    await closed;
  }

  #accept(socket: TLSSocket): void {
    if (this.#shuttingDown) {
      socket.destroy();
      return;
    }
    const connection = new ImpConnection(randomBytes(4).toString('hex'), socket, this.#context, this.#log);
    this.connections.add(connection);
    connection.onClose = () => {
      this.connections.delete(connection);
      this.#context.subscriptions.removeAll(connection);
    };
  }
}
