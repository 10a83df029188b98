/**
 * A bound AF_UNIX datagram socket standing in for systemd's notification socket in tests.
 */

import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

interface DatagramSocket {
  bind(path: string): void;
  close(): void;
  on(event: 'message', listener: (message: Buffer) => void): void;
}

const unixDgram = createRequire(import.meta.url)('unix-dgram') as { createSocket(type: 'unix_dgram'): DatagramSocket };

/** A bound datagram socket standing in for systemd's notification socket; keeps every datagram. */
export class NotifyListener {
  readonly path: string;
  readonly datagrams: string[] = [];
  readonly #dir: string;
  readonly #socket: DatagramSocket;

  constructor() {
    this.#dir = mkdtempSync(join(tmpdir(), 'imp-cdr-notify-'));
    this.path = join(this.#dir, 'notify.sock');
    this.#socket = unixDgram.createSocket('unix_dgram');
    this.#socket.on('message', (message) => this.datagrams.push(message.toString('utf8')));
    this.#socket.bind(this.path);
  }

  /** Lets any local user send to the socket, for a daemon started as another user. */
  allowAnyUser(): void {
    chmodSync(this.#dir, 0o755);
    chmodSync(this.path, 0o777);
  }

  /** Waits until a datagram matches `predicate` and returns its index; fails after `timeoutMs`. */
  async waitFor(predicate: (datagram: string) => boolean, timeoutMs = 20_000, from = 0): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const index = this.datagrams.findIndex((datagram, position) => position >= from && predicate(datagram));
      if (index >= 0) {
        return index;
      }
      await sleep(20);
    }
    throw new Error(`no matching datagram within ${timeoutMs} ms; received:\n${this.datagrams.join('\n---\n')}`);
  }

  countSince(from: number, predicate: (datagram: string) => boolean): number {
    return this.datagrams.slice(from).filter(predicate).length;
  }

  close(): void {
    this.#socket.close();
    rmSync(this.#dir, { recursive: true, force: true });
  }
}
