/**
 * The joining side of pairing and the initiating side of unpairing, as an ssh2 client. Every connection
 * pins one host key: the probe accepts none (it only reads the fingerprint), join and unpair accept only
 * the fingerprint they are given.
 */

import ssh2 from 'ssh2';
import type { ClientChannel } from 'ssh2';

import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { fingerprintOf, type HostKey } from './host-key.js';
import { PAIRING_SUBSYSTEM, PeerChannel } from './peer-channel.js';

export interface PinnedConnection {
  channel: PeerChannel;
  close(): void;
}

/**
 * Connects to `host`:`port` and returns the server's host key fingerprint. The host verifier rejects
 * every key, so the connection ends before authentication.
 *
 * @throws CdrError `ERR_PAIR_UNREACHABLE` when no SSH server sends its host key within `timeoutMs`
 */
export function probeHostKey(host: string, port: number, timeoutMs: number, log: Logger): Promise<string> {
  return new Promise((resolveProbe, rejectProbe) => {
    const client = new ssh2.Client();
    let fingerprint: string | undefined;
    const finish = () => {
      client.end();
      if (fingerprint) {
        resolveProbe(fingerprint);
      } else {
        rejectProbe(unreachable(host, port, 'no SSH host key received'));
      }
    };
    client.on('error', (error: Error) => {
      if (!fingerprint) {
        log.warn({ host, port, err: error }, 'probing the pairing host key failed');
        rejectProbe(unreachable(host, port, error.message, error));
        return;
      }
      finish();
    });
    client.on('close', finish);
    client.on('ready', () => {
      // Unreachable: the verifier below rejects every host key.
      client.end();
    });
    client.connect({
      host,
      port,
      readyTimeout: timeoutMs,
      username: 'cdr-probe',
      hostVerifier: (key: Buffer) => {
        fingerprint = fingerprintOf(key);
        return false;
      },
    });
  });
}

/**
 * Connects with host key `expectedFingerprint` pinned, authenticates as `username` with this node's
 * host key (and `password` after it, when given), and opens the pairing subsystem.
 *
 * @throws CdrError `ERR_PAIR_FINGERPRINT_MISMATCH` when the server shows another host key,
 *   `ERR_PAIR_AUTH_REJECTED` when it rejects the authentication, `ERR_PAIR_UNREACHABLE` otherwise
 */
export function connectPinned(options: {
  host: string;
  port: number;
  expectedFingerprint: string;
  username: string;
  hostKey: HostKey;
  password?: string;
  timeoutMs: number;
  log: Logger;
}): Promise<PinnedConnection> {
  const { host, port, expectedFingerprint, log } = options;

  return new Promise((resolveConnect, rejectConnect) => {
    const client = new ssh2.Client();
    let presented: string | undefined;
    let settled = false;
    const fail = (error: CdrError) => {
      if (settled) return;
      settled = true;
      client.end();
      rejectConnect(error);
    };

    client.on('error', (error: Error & { level?: string }) => {
      if (!settled) {
        log.warn({ host, port, err: error }, 'pairing SSH connection failed');
      }
      if (presented !== undefined && presented !== expectedFingerprint) {
        fail(
          new CdrError(
            'ERR_PAIR_FINGERPRINT_MISMATCH',
            `${host}:${port} presented host key ${presented}, expected ${expectedFingerprint}; check the fingerprint ` +
              `"cdrctl pair open" prints on that node, or stop: another machine may be answering`,
            { details: { host, port, expected: expectedFingerprint, presented } },
          ),
        );
      } else if (error.level === 'client-authentication') {
        fail(new CdrError('ERR_PAIR_AUTH_REJECTED', `${host}:${port} rejected this node's SSH key: ${error.message}`, { cause: error }));
      } else {
        fail(unreachable(host, port, error.message, error));
      }
    });
    client.on('close', () => fail(unreachable(host, port, 'connection closed before the pairing channel opened')));
    client.on('ready', () => {
      client.subsys(PAIRING_SUBSYSTEM, (error: Error | undefined, stream: ClientChannel) => {
        if (error) {
          fail(new CdrError('ERR_PAIR_PROTOCOL', `${host}:${port} rejected the pairing subsystem: ${error.message}`, { cause: error }));
          return;
        }
        stream.on('error', (streamError: Error) => log.warn({ err: streamError }, 'pairing channel error'));
        settled = true;
        resolveConnect({ channel: new PeerChannel(stream), close: () => client.end() });
      });
    });

    const methods: ssh2.AnyAuthMethod[] = [
      { type: 'publickey', username: options.username, key: options.hostKey.parsed },
    ];
    if (options.password !== undefined) {
      methods.push({ type: 'password', username: options.username, password: options.password });
    }

    client.connect({
      host,
      port,
      username: options.username,
      readyTimeout: options.timeoutMs,
      hostVerifier: (key: Buffer) => {
        presented = fingerprintOf(key);
        return presented === expectedFingerprint;
      },
      authHandler: methods,
    });
  });
}

function unreachable(host: string, port: number, reason: string, cause?: unknown): CdrError {
  return new CdrError(
    'ERR_PAIR_UNREACHABLE',
    `cannot reach the pairing service at ${host}:${port} (${reason}); check the address and that imp-cdr-pairing runs there`,
    { cause, details: { host, port } },
  );
}
