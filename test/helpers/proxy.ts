/**
 * A TCP proxy on 127.0.0.1 that a test can cut, delay and restore, to simulate a network partition
 * between two nodes.
 */

import { createConnection, createServer, type Server, type Socket } from 'node:net';

export class CuttableProxy {
  readonly #server: Server;
  readonly #sockets = new Set<Socket>();
  #target: { host: string; port: number };
  #cut = false;
  #delayMs = 0;
  port = 0;

  constructor(target: { host: string; port: number }) {
    this.#target = target;
    this.#server = createServer((client) => this.#accept(client));
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolveListen) => this.#server.listen(0, '127.0.0.1', () => resolveListen()));
    this.port = (this.#server.address() as { port: number }).port;
    return this.port;
  }

  /** Points new connections at another port, as after the target restarted. */
  retarget(target: { host: string; port: number }): void {
    this.#target = target;
  }

  /** Drops every connection and refuses new ones until `heal`. */
  cut(): void {
    this.#cut = true;
    for (const socket of this.#sockets) {
      socket.destroy();
    }
  }

  heal(): void {
    this.#cut = false;
  }

  /** Delays every chunk in both directions by `ms`. */
  delay(ms: number): void {
    this.#delayMs = ms;
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolveClose) => this.#server.close(() => resolveClose()));
  }

  #accept(client: Socket): void {
    if (this.#cut) {
      client.destroy();
      return;
    }
    const upstream = createConnection(this.#target);
    for (const socket of [client, upstream]) {
      this.#sockets.add(socket);
      socket.on('close', () => {
        this.#sockets.delete(socket);
        client.destroy();
        upstream.destroy();
      });
      socket.on('error', () => socket.destroy());
    }
    this.#pipe(client, upstream);
    this.#pipe(upstream, client);
  }

  #pipe(from: Socket, to: Socket): void {
    from.on('data', (chunk: Buffer) => {
      if (this.#delayMs > 0) {
        from.pause();
        setTimeout(() => {
          if (!to.destroyed) to.write(chunk);
          from.resume();
        }, this.#delayMs);
      } else if (!to.destroyed) {
        to.write(chunk);
      }
    });
  }
}
