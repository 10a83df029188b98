/**
 * The AgentX subagent (RFC 2741 over TCP): opens a session with the master agent (snmpd), registers
 * every IMP-CDR-MIB provider, and reconnects with exponential backoff whenever the connection closes.
 * Notifications go to the master agent as Notify PDUs; snmpd forwards them to its own trap sinks.
 */

import snmp from 'net-snmp';

import './agentx-octet-string.js';

import type { SnmpConfig } from '../common/config-schema.js';
import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import type { ImpCdrMibModel } from './mib-model.js';
import type { AgentxVarbind, NetSnmpSubagent } from './net-snmp-types.js';
import type { PendingNotification } from './notifications.js';
import type { RepositorySnapshot } from './snapshot.js';

/** Connection state of the subagent. */
export type SubagentState = 'connecting' | 'registered' | 'waiting' | 'closed';

/** Delay before reconnection attempt `attempt` (from 0): min·2^attempt, capped at max, in milliseconds. */
export function reconnectDelayMs(attempt: number, minMs: number, maxMs: number): number {
  return Math.min(maxMs, minMs * 2 ** Math.min(attempt, 30));
}

/**
 * Makes `subagent` answer noSuchInstance, not noSuchObject, for a missing instance of an object it
 * serves (for example impCdrNodeId.1), as RFC 3416 section 4.2.1 requires. net-snmp 3.29.2's
 * subagent returns noSuchObject for every OID that is not in its tree; its standalone agent already
 * makes the distinction.
 */
function answerNoSuchInstance(subagent: NetSnmpSubagent): void {
  const sendResponse = subagent.sendResponse.bind(subagent);
  subagent.sendResponse = (responsePdu: { varbinds?: AgentxVarbind[] }, varbinds?: AgentxVarbind[]) => {
    for (const varbind of varbinds ?? responsePdu.varbinds ?? []) {
      if (varbind.type === snmp.ObjectType.NoSuchObject && subagent.getMib().getAncestorProviderFromOid(varbind.oid)) {
        varbind.type = snmp.ObjectType.NoSuchInstance;
      }
    }
    sendResponse(responsePdu, varbinds);
  };
}

export class AgentxSubagent {
  readonly #settings: SnmpConfig['agentx'];
  readonly #model: ImpCdrMibModel;
  readonly #log: Logger;
  #state: SubagentState = 'waiting';
  #subagent: NetSnmpSubagent | undefined;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #snapshot: RepositorySnapshot;
  #onRegistered: (() => void)[] = [];

  constructor(settings: SnmpConfig['agentx'], model: ImpCdrMibModel, snapshot: RepositorySnapshot, log: Logger) {
    this.#settings = settings;
    this.#model = model;
    this.#snapshot = snapshot;
    this.#log = log.child({ component: 'agentx', master: `${settings.host}:${settings.port}` });
  }

  get state(): SubagentState {
    return this.#state;
  }

  /** Starts connecting. Failures are logged and retried with backoff instead of thrown. */
  start(): void {
    this.#connect();
  }

  /** Resolves once the subagent is registered with the master agent (now, if it already is). */
  registered(): Promise<void> {
    if (this.#state === 'registered') {
      return Promise.resolve();
    }
    return new Promise((resolveRegistered) => this.#onRegistered.push(resolveRegistered));
  }

  /** Writes `snapshot` into the MIB that serves the master agent's requests. */
  update(snapshot: RepositorySnapshot): void {
    this.#snapshot = snapshot;
    if (this.#state === 'registered') {
      this.#model.write(this.#subagent!.getMib(), snapshot, 'agentx');
    }
  }

  /**
   * Sends `notification` as a Notify PDU.
   *
   * @throws CdrError `ERR_SNMP_MASTER_UNAVAILABLE` when no session is open, `ERR_SNMP_NOTIFY_FAILED` when the master rejects it
   */
  async notify(notification: PendingNotification, snapshot: RepositorySnapshot, previousVersion: string): Promise<void> {
    if (this.#state !== 'registered') {
      throw new CdrError('ERR_SNMP_MASTER_UNAVAILABLE', `no AgentX session with ${this.#settings.host}:${this.#settings.port}; ${notification.name} not sent`);
    }
    const varbinds = this.#model.notificationVarbinds(notification, snapshot, 'agentx');
    if (notification.name === 'impCdrFirmwareApplied' || notification.name === 'impCdrFirmwareRolledBack') {
      varbinds.push({ oid: `${this.#model.oids.object('firmware', 1)}.0`, type: snmp.ObjectType.OctetString, value: previousVersion });
    }
    await new Promise<void>((resolveSent, rejectSent) => {
      this.#subagent!.notify(this.#model.oids.notification(notification.name), varbinds, (error, response) => {
        if (error || response?.error) {
          rejectSent(
            new CdrError('ERR_SNMP_NOTIFY_FAILED', `master agent rejected ${notification.name}: ${error?.message ?? `AgentX error ${response?.error}`}`, {
              cause: error ?? undefined,
            }),
          );
          return;
        }
        resolveSent();
      });
    });
  }

  async close(): Promise<void> {
    const subagent = this.#subagent;
    const wasRegistered = this.#state === 'registered';
    this.#state = 'closed';
    clearTimeout(this.#timer);
    if (!subagent) {
      return;
    }
    if (wasRegistered) {
      await new Promise<void>((resolveClosed) => {
        const timer = setTimeout(resolveClosed, 1000);
        subagent.close(() => {
          clearTimeout(timer);
          resolveClosed();
        });
      });
    }
    subagent.socket?.destroy();
    this.#subagent = undefined;
  }

  #connect(): void {
    if (this.#state === 'closed') {
      return;
    }
    this.#state = 'connecting';
    // NOTE: net-snmp 3.29.2 decodes each TCP data event as exactly one AgentX PDU. Registration
    // waits for each Response, and snmpd sends one request at a time per session, but two PDUs
    // coalesced in one segment would lose the second.
    const subagent: NetSnmpSubagent = snmp.createSubagent({
      master: this.#settings.host,
      masterPort: this.#settings.port,
      description: 'IMP-CDR subagent (imp-cdr-snmp)',
    });
    answerNoSuchInstance(subagent);
    this.#subagent = subagent;
    let failed = false;
    const fail = (reason: string, error?: Error) => {
      if (failed || this.#subagent !== subagent) {
        return;
      }
      failed = true;
      subagent.socket?.destroy();
      this.#scheduleReconnect(reason, error);
    };

    subagent.on('error', (error: Error) => fail('connection error', error));
    subagent.on('close', () => fail('connection closed'));
    subagent.socket!.once('connect', () => {
      subagent.open((error, response) => {
        if (error || response?.error) {
          fail('Open rejected', error ?? new Error(`AgentX error ${response?.error}`));
          return;
        }
        this.#register(subagent).then(
          () => {
            if (this.#subagent !== subagent || this.#state === 'closed') {
              return;
            }
            this.#state = 'registered';
            this.#attempt = 0;
            this.#model.write(subagent.getMib(), this.#snapshot, 'agentx');
            this.#log.info({ sessionId: subagent.sessionID }, 'AgentX session open, IMP-CDR-MIB registered');
            for (const resolveRegistered of this.#onRegistered.splice(0)) {
              resolveRegistered();
            }
          },
          (registerError: Error) => fail('registration failed', registerError),
        );
      });
    });
  }

  /** Registers every provider, one Register PDU at a time, because the master sends one Response per PDU. */
  async #register(subagent: NetSnmpSubagent): Promise<void> {
    for (const provider of this.#model.providers()) {
      await new Promise<void>((resolveRegistered, rejectRegistered) => {
        subagent.registerProvider(provider, (error, response) => {
          if (error || response?.error) {
            const name = (provider as { name: string }).name;
            rejectRegistered(
              new CdrError('ERR_SNMP_REGISTER_FAILED', `master agent rejected the registration of ${name}: ${error?.message ?? `AgentX error ${response?.error}`}`, {
                cause: error ?? undefined,
              }),
            );
            return;
          }
          resolveRegistered();
        });
      });
    }
  }

  #scheduleReconnect(reason: string, error?: Error): void {
    if (this.#state === 'closed') {
      return;
    }
    const delayMs = reconnectDelayMs(this.#attempt, this.#settings.reconnectMinMs, this.#settings.reconnectMaxMs);
    this.#attempt += 1;
    this.#state = 'waiting';
    this.#log.warn({ reason, err: error, attempt: this.#attempt, delayMs, code: 'ERR_SNMP_MASTER_UNAVAILABLE' }, 'AgentX master not available; reconnecting');
    this.#timer = setTimeout(() => this.#connect(), delayMs);
  }
}
