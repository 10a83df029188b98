/**
 * The standalone SNMP agent for hosts where no snmpd master agent runs. It serves SNMPv3 (USM) on UDP,
 * and v2c only when communities are configured. Notifications go to the configured trap targets
 * as SNMPv2 traps.
 */

import { randomBytes } from 'node:crypto';

import snmp, { type Session } from 'net-snmp';

import type { SnmpConfig, SnmpUserConfig } from '../common/config-schema.js';
import { CdrError } from '../common/errors.js';
import type { Logger } from '../common/logger.js';
import { keepEndOfMibView } from './end-of-mib-view.js';
import type { ImpCdrMibModel, MibLike } from './mib-model.js';
import type { NetSnmpAgent } from './net-snmp-types.js';
import type { RepositorySnapshot } from './snapshot.js';
import type { PendingNotification } from './notifications.js';

const AUTH_PROTOCOLS: Record<SnmpUserConfig['authProtocol'], number> = {
  sha1: snmp.AuthProtocols.sha,
  sha224: snmp.AuthProtocols.sha224,
  sha256: snmp.AuthProtocols.sha256,
  sha384: snmp.AuthProtocols.sha384,
  sha512: snmp.AuthProtocols.sha512,
};

/** Logs at most one line per this many rejected requests of one kind, after the first. */
const REJECTION_LOG_EVERY = 100;

/** Closed set of rejection kinds, from net-snmp's error messages (3.29.2). */
function rejectionKind(message: string): 'wrong digest' | 'unknown user' | 'unknown community' | 'security level' | 'decryption' | 'other' {
  if (/digest/i.test(message)) {
    return 'wrong digest';
  }
  if (/user/i.test(message)) {
    return 'unknown user';
  }
  if (/community/i.test(message)) {
    return 'unknown community';
  }
  if (/level|authentication|privacy/i.test(message)) {
    return 'security level';
  }
  if (/decrypt/i.test(message)) {
    return 'decryption';
  }
  return 'other';
}

function usmUser(user: SnmpUserConfig) {
  const base = {
    name: user.name,
    authProtocol: AUTH_PROTOCOLS[user.authProtocol],
    authKey: user.authPassphrase,
  };
  return user.level === 'authPriv'
    ? { ...base, level: snmp.SecurityLevel.authPriv, privProtocol: snmp.PrivProtocols.aes, privKey: user.privPassphrase }
    : { ...base, level: snmp.SecurityLevel.authNoPriv };
}

/**
 * Returns the configured engine id, or generates one as RFC 3411 (SnmpEngineID) describes: the
 * enterprise number with the top bit set, format 5 (octets chosen by the enterprise), then 12 random
 * octets.
 */
function engineIdOf(settings: SnmpConfig): string {
  if (settings.standalone.engineId) {
    return settings.standalone.engineId;
  }
  const enterprise = ((0x8000_0000 | settings.enterpriseNumber) >>> 0).toString(16).padStart(8, '0');
  return `${enterprise}05${randomBytes(12).toString('hex')}`;
}

export class StandaloneAgent {
  readonly #settings: SnmpConfig;
  readonly #model: ImpCdrMibModel;
  readonly #log: Logger;
  readonly #startedMs = Date.now();
  readonly #engineId: string;
  readonly #rejections = new Map<string, number>();
  #agent: NetSnmpAgent | undefined;
  #sessions: Session[] = [];

  constructor(settings: SnmpConfig, model: ImpCdrMibModel, log: Logger) {
    this.#settings = settings;
    this.#model = model;
    this.#log = log.child({ component: 'standalone-agent' });
    this.#engineId = engineIdOf(settings);
  }

  /** Engine id in hex, as receivers of v3 traps must configure it. */
  get engineId(): string {
    return this.#engineId;
  }

  /**
   * Binds the UDP socket and registers the MIB.
   *
   * @throws CdrError `ERR_SNMP_AGENT_BIND` when the address is in use or not available
   */
  async start(snapshot: RepositorySnapshot): Promise<void> {
    const { host, port, users, communities } = this.#settings.standalone;
    let bindError: ((error: Error) => void) | undefined;

    const agent: NetSnmpAgent = snmp.createAgent(
      {
        port,
        address: host,
        transport: host.includes(':') ? 'udp6' : 'udp4',
        engineID: this.#engineId,
        accessControlModelType: snmp.AccessControlModelType.Simple,
      },
      (error: (Error & { code?: string; rinfo?: { address: string; port: number } }) | null) => {
        if (!error) {
          return;
        }
        if (bindError && error.code) {
          bindError(error);
          return;
        }
        this.#logRejection(error);
      },
    );

    keepEndOfMibView(agent);

    this.#agent = agent;
    const authorizer = agent.getAuthorizer();
    const accessControl = authorizer.getAccessControlModel();
    for (const user of users) {
      authorizer.addUser(usmUser(user));
      accessControl.setUserAccess(user.name, snmp.AccessLevel.ReadOnly);
    }
    for (const community of communities) {
      authorizer.addCommunity(community);
      accessControl.setCommunityAccess(community, snmp.AccessLevel.ReadOnly);
    }

    const mib: MibLike = agent.getMib();
    for (const provider of [...this.#model.systemProviders(), ...this.#model.providers()]) {
      mib.registerProvider(provider);
    }
    this.update(snapshot);

    const sockets = Object.values(agent.listener.sockets);
    await new Promise<void>((resolveBound, rejectBound) => {
      bindError = (error) =>
        rejectBound(
          new CdrError('ERR_SNMP_AGENT_BIND', `cannot bind the SNMP agent to ${host}:${port} (${(error as NodeJS.ErrnoException).code}); free the port or set snmp.standalone.port`, {
            cause: error,
            details: { host, port },
          }),
        );
      sockets[0]!.once('listening', () => resolveBound());
    });
    bindError = undefined;

    this.#sessions = this.#settings.standalone.trapTargets.map((target) => {
      if (target.user) {
        const user = users.find((candidate) => candidate.name === target.user)!;
        return snmp.createV3Session(target.host, usmUser(user), { trapPort: target.port, engineID: this.#engineId, version: snmp.Version3 });
      }
      return snmp.createSession(target.host, target.community, { trapPort: target.port, version: snmp.Version2c });
    });
    for (const session of this.#sessions) {
      session.on('error', (error: Error) => this.#log.warn({ err: error }, 'trap session error'));
    }

    this.#log.info(
      { host, port, engineId: this.#engineId, users: users.map((user) => user.name), v2c: communities.length > 0, trapTargets: this.#sessions.length },
      'standalone SNMP agent listening',
    );
  }

  /** Writes `snapshot` into the agent's MIB. */
  update(snapshot: RepositorySnapshot): void {
    if (!this.#agent) {
      return;
    }
    const mib = this.#agent.getMib();
    this.#model.write(mib, snapshot, 'ber');
    this.#model.writeSystem(mib, { descr: `IMP-CDR ${snapshot.status?.softwareVersion ?? ''}`.trim(), startedMs: this.#startedMs }, snapshot);
  }

  /** Sends `notification` to every trap target; failures are logged, not thrown. */
  async notify(notification: PendingNotification, snapshot: RepositorySnapshot, previousVersion: string): Promise<void> {
    const varbinds = this.#model.notificationVarbinds(notification, snapshot, 'ber');
    if (notification.name === 'impCdrFirmwareApplied' || notification.name === 'impCdrFirmwareRolledBack') {
      varbinds.push({ oid: `${this.#model.oids.object('firmware', 1)}.0`, type: snmp.ObjectType.OctetString, value: previousVersion });
    }
    const oid = this.#model.oids.notification(notification.name);

    await Promise.all(
      this.#sessions.map(
        (session, position) =>
          new Promise<void>((resolveSent) => {
            session.trap(oid, varbinds, (error: Error | null) => {
              const target = this.#settings.standalone.trapTargets[position]!;
              if (error) {
                this.#log.warn({ err: error, notification: notification.name, feed: notification.feed, target: `${target.host}:${target.port}`, code: 'ERR_SNMP_NOTIFY_FAILED' }, 'trap not sent');
              } else {
                this.#log.info({ notification: notification.name, feed: notification.feed, target: `${target.host}:${target.port}` }, 'trap sent');
              }
              resolveSent();
            });
          }),
      ),
    );
  }

  async close(): Promise<void> {
    for (const session of this.#sessions) {
      session.close();
    }
    this.#sessions = [];
    const agent = this.#agent;
    if (agent) {
      const sockets = Object.keys(agent.listener.sockets).length;
      await new Promise<void>((resolveClosed) => {
        let closed = 0;
        agent.close(() => {
          closed += 1;
          if (closed === sockets) {
            resolveClosed();
          }
        });
      });
      this.#agent = undefined;
    }
  }

  /**
   * Logs requests the agent rejected, by kind: the first of each kind, then one per
   * REJECTION_LOG_EVERY. The kind, not net-snmp's message, is logged, because the message of a wrong
   * digest carries both digests and differs every time.
   */
  #logRejection(error: Error & { rinfo?: { address: string; port: number } }): void {
    const kind = rejectionKind(error.message);
    const count = (this.#rejections.get(kind) ?? 0) + 1;
    this.#rejections.set(kind, count);
    if (count === 1 || count % REJECTION_LOG_EVERY === 0) {
      this.#log.warn({ kind, from: error.rinfo ? `${error.rinfo.address}:${error.rinfo.port}` : undefined, count }, 'SNMP request rejected');
    }
  }
}
