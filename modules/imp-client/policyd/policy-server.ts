/**
 * A Postfix SMTPD access policy delegation server (https://www.postfix.org/SMTPD_POLICY_README.html).
 *
 * Request: `name=value` lines, each ended by a newline, then an empty line. Response: `action=ACTION`,
 * a newline, then an empty line. Postfix keeps the connection open for further requests.
 *
 * The action comes from the repository's verdict on `client_address`, looked up through the IMP
 * client's cache. Each mail transaction (`instance`) is reported as one session once it reaches DATA or
 * END-OF-MESSAGE; one whose recipients were all rejected is reported without a message after
 * `ABANDONED_AFTER_MS`.
 */

import { createServer, type Server, type Socket } from 'node:net';

import { verdictFromWire, type VerdictName } from '../../protocol/constants.js';
import { CdrError } from '../../../services/common/errors.js';
import { listenTcp } from '../../../services/common/listen.js';
import type { Logger } from '../../../services/common/logger.js';
import type { ImpClient } from '../imp-client.js';
import { normaliseIp, type SessionReport } from '../session.js';

/** Largest request accepted, in bytes; Postfix requests are a few hundred bytes. */
export const MAX_REQUEST_BYTES = 16 * 1024;
/** Age after which a transaction that never reached DATA is reported without a message. */
export const ABANDONED_AFTER_MS = 5 * 60_000;

export interface PolicyActions {
  trusted: string;
  neutral: string;
  suspect: string;
  malicious: string;
  /** Returned when the verdict does not arrive in time or the request is invalid. */
  unavailable: string;
}

export interface PolicyServerOptions {
  host: string;
  port: number;
  actions: PolicyActions;
  lookupTimeoutMs: number;
  client: ImpClient;
  logger: Logger;
}

interface Transaction {
  session: SessionReport;
  startedMs: number;
}

/**
 * Parses one request block (without the final empty line) into attributes.
 *
 * @throws CdrError `ERR_POLICYD_REQUEST` when a line has no `=`, or `request` is not
 *   `smtpd_access_policy`.
 */
export function parsePolicyRequest(block: string): Map<string, string> {
  const attributes = new Map<string, string>();
  for (const line of block.split('\n')) {
    const separator = line.indexOf('=');
    if (separator <= 0) {
      throw new CdrError('ERR_POLICYD_REQUEST', `policy request line must be NAME=VALUE, got ${JSON.stringify(line.slice(0, 80))}`);
    }
    attributes.set(line.slice(0, separator), line.slice(separator + 1));
  }
  if (attributes.get('request') !== 'smtpd_access_policy') {
    throw new CdrError('ERR_POLICYD_REQUEST', `request must be smtpd_access_policy, got ${JSON.stringify(attributes.get('request') ?? null)}`);
  }
  return attributes;
}

export class PolicyServer {
  readonly #options: PolicyServerOptions;
  readonly #server: Server;
  readonly #transactions = new Map<string, Transaction>();
  #sweepTimer: NodeJS.Timeout | undefined;
  #nextConnectionId = 1;

  constructor(options: PolicyServerOptions) {
    this.#options = options;
    this.#server = createServer((socket) => this.#serve(socket));
  }

  /** Listens and returns the bound port. */
  async listen(): Promise<number> {
    const bound = await listenTcp(this.#server, this.#options.host, this.#options.port);
    this.#sweepTimer = setInterval(() => this.#reportAbandoned(Date.now()), 30_000);
    this.#sweepTimer.unref();
    return bound.port;
  }

  async close(): Promise<void> {
    clearInterval(this.#sweepTimer);
    this.#reportAbandoned(Number.POSITIVE_INFINITY);
    await new Promise<void>((resolveClose) => this.#server.close(() => resolveClose()));
  }

  #serve(socket: Socket): void {
    const log = this.#options.logger.child({ connection: this.#nextConnectionId++, peer: socket.remoteAddress });
    let buffered = '';
    let queue = Promise.resolve();

    socket.setEncoding('utf8');
    socket.on('error', (error) => log.warn({ err: error }, 'policy connection failed'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      for (;;) {
        const end = buffered.indexOf('\n\n');
        if (end < 0) {
          break;
        }
        const block = buffered.slice(0, end);
        buffered = buffered.slice(end + 2);
        // Responses go out in request order, as Postfix expects.
        queue = queue.then(() => this.#answer(block, log)).then((action) => {
          socket.write(`action=${action}\n\n`);
        });
      }
      if (buffered.length > MAX_REQUEST_BYTES) {
        log.error({ code: 'ERR_POLICYD_REQUEST', bytes: buffered.length }, `policy request exceeds ${MAX_REQUEST_BYTES} bytes without an empty line; closing the connection`);
        socket.destroy();
      }
    });
  }

  async #answer(block: string, log: Logger): Promise<string> {
    const { actions } = this.#options;
    let attributes: Map<string, string>;
    try {
      attributes = parsePolicyRequest(block.replace(/\r/g, ''));
    } catch (error) {
      log.warn({ code: (error as CdrError).code, err: error }, 'invalid policy request; responding with the unavailable action');
      return actions.unavailable;
    }

    const clientIp = normaliseIp(attributes.get('client_address') ?? '');
    if (!clientIp) {
      log.warn({ code: 'ERR_POLICYD_REQUEST', clientAddress: attributes.get('client_address') }, 'policy request without a valid client_address');
      return actions.unavailable;
    }

    const verdict = await this.#verdict(clientIp, log);
    const action = verdict ? actions[verdict] : actions.unavailable;
    this.#track(attributes, clientIp, action);
    return action;
  }

  async #verdict(clientIp: string, log: Logger): Promise<VerdictName | undefined> {
    try {
      const [answer] = await this.#options.client.lookup([{ kind: 'ip', key: clientIp }], this.#options.lookupTimeoutMs);
      return verdictFromWire(answer?.reputation?.verdict);
    } catch (error) {
      log.warn({ clientIp, code: (error as CdrError).code }, 'no verdict; answering with the unavailable action');
      return undefined;
    }
  }

  /** Counts the recipient of a RCPT request and reports the transaction at DATA or END-OF-MESSAGE. */
  #track(attributes: Map<string, string>, clientIp: string, action: string): void {
    const instance = attributes.get('instance') ?? `${clientIp}/${attributes.get('sender') ?? ''}`;
    const state = (attributes.get('protocol_state') ?? '').toUpperCase();
    let transaction = this.#transactions.get(instance);
    if (!transaction) {
      const sender = attributes.get('sender');
      transaction = {
        session: { clientIp, messages: 0, rcptAccepted: 0, rcptRejected: 0, ...(sender ? { envelopeSender: sender } : {}) },
        startedMs: Date.now(),
      };
      this.#transactions.set(instance, transaction);
    }

    const rejected = /^(REJECT|DEFER|[45][0-9][0-9])/i.test(action);
    if (state === 'RCPT') {
      if (rejected) {
        transaction.session.rcptRejected! += 1;
      } else {
        transaction.session.rcptAccepted! += 1;
      }
      return;
    }
    if (state === 'DATA' || state === 'END-OF-MESSAGE') {
      transaction.session.messages = 1;
      this.#transactions.delete(instance);
      this.#report(transaction.session);
    }
  }

  #reportAbandoned(nowMs: number): void {
    for (const [instance, transaction] of this.#transactions) {
      if (nowMs - transaction.startedMs >= ABANDONED_AFTER_MS) {
        this.#transactions.delete(instance);
        this.#report(transaction.session);
      }
    }
  }

  #report(session: SessionReport): void {
    try {
      this.#options.client.report(session);
    } catch (error) {
      this.#options.logger.warn({ err: error, clientIp: session.clientIp }, 'session not reported');
    }
  }
}
