/**
 * imp-cdr-snmp wiring: polls the repository, writes each snapshot into the agent's MIB (AgentX
 * subagent or standalone agent) and sends the notifications the snapshot calls for.
 */

import type { CdrConfig } from '../common/config.js';
import { resolveUnder } from '../common/config.js';
import type { SnmpConfig } from '../common/config-schema.js';
import { Lifecycle } from '../common/lifecycle.js';
import type { Logger } from '../common/logger.js';
import { AgentxSubagent } from './agentx-subagent.js';
import { ImpCdrMibModel } from './mib-model.js';
import { NotificationDetector, type PendingNotification } from './notifications.js';
import { ControlSocketSource, EMPTY_SNAPSHOT, pollSnapshot, type RepositorySnapshot, type StatusSource } from './snapshot.js';
import { StandaloneAgent } from './standalone-agent.js';

/** Maximum time one poll waits for the repository, in milliseconds. A slower poll counts as unreachable. */
const MAX_POLL_WAIT_MS = 5000;

export interface SnmpServiceOptions {
  /** Status source; the repository's control socket when absent. */
  source?: StatusSource;
}

export class SnmpService {
  readonly lifecycle = new Lifecycle('snmp service');
  readonly #config: Readonly<CdrConfig>;
  readonly #settings: SnmpConfig;
  readonly #log: Logger;
  readonly #source: StatusSource;
  readonly #model: ImpCdrMibModel;
  readonly #detector: NotificationDetector;
  #agent: StandaloneAgent | AgentxSubagent | undefined;
  #snapshot: RepositorySnapshot = EMPTY_SNAPSHOT;
  #timer: NodeJS.Timeout | undefined;
  #polling: Promise<void> = Promise.resolve();

  constructor(config: Readonly<CdrConfig>, settings: SnmpConfig, log: Logger, options: SnmpServiceOptions = {}) {
    this.#config = config;
    this.#settings = settings;
    this.#log = log;
    const socketPath = resolveUnder(config.paths.run, config.control.socket);
    this.#source = options.source ?? new ControlSocketSource(socketPath, Math.min(MAX_POLL_WAIT_MS, settings.pollIntervalMs));
    const thresholds = { replicationLagThresholdMs: settings.replicationLagThresholdMs, diskFreeThresholdKiB: settings.diskFreeThresholdKiB };
    this.#model = new ImpCdrMibModel(settings.enterpriseNumber, thresholds);
    this.#detector = new NotificationDetector(thresholds);
  }

  get snapshot(): RepositorySnapshot {
    return this.#snapshot;
  }

  /** The standalone agent's engine id, or undefined in AgentX mode. */
  get engineId(): string | undefined {
    return this.#agent instanceof StandaloneAgent ? this.#agent.engineId : undefined;
  }

  /**
   * Polls once, starts the agent, then polls every `snmp.pollIntervalMs`.
   *
   * @throws CdrError `ERR_SNMP_AGENT_BIND` in standalone mode when the UDP port cannot be bound
   */
  async start(): Promise<void> {
    this.lifecycle.moveTo('opening');
    // The first poll runs before the agent exists, so the MIB starts with live values. The
    // notifications it calls for (disk space already low, for example) go out once the agent runs.
    const startup = await this.#pollOnce();

    if (this.#settings.mode === 'standalone') {
      const agent = new StandaloneAgent(this.#settings, this.#model, this.#log);
      await agent.start(this.#snapshot);
      this.#agent = agent;
    } else {
      const subagent = new AgentxSubagent(this.#settings.agentx, this.#model, this.#snapshot, this.#log);
      subagent.start();
      this.#agent = subagent;
    }

    this.lifecycle.moveTo('open');
    await this.#send(startup);
    this.#schedule();
    this.#log.info({ mode: this.#settings.mode, enterprise: this.#settings.enterpriseNumber, pollIntervalMs: this.#settings.pollIntervalMs }, 'snmp service started');
  }

  /** Resolves once the AgentX subagent is registered; at once in standalone mode. */
  async ready(): Promise<void> {
    if (this.#agent instanceof AgentxSubagent) {
      await this.#agent.registered();
    }
  }

  async stop(): Promise<void> {
    if (this.lifecycle.state === 'closing' || this.lifecycle.state === 'closed') {
      return;
    }
    this.lifecycle.moveTo('closing');
    clearTimeout(this.#timer);
    await this.#polling;
    await this.#agent?.close();
    this.lifecycle.moveTo('closed');
  }

  #schedule(): void {
    this.#timer = setTimeout(() => {
      this.#polling = this.#pollOnce()
        .then((pending) => this.#send(pending))
        .finally(() => {
          if (this.lifecycle.state === 'open') {
            this.#schedule();
          }
        });
    }, this.#settings.pollIntervalMs);
  }

  /** Polls the repository, writes the snapshot into the MIB and returns the notifications it calls for. */
  async #pollOnce(): Promise<PendingNotification[]> {
    const previous = this.#snapshot;
    const snapshot = await pollSnapshot(this.#source, this.#config.paths.state, previous);
    this.#snapshot = snapshot;

    if (snapshot.reachable !== previous.reachable || previous.polledMs === 0) {
      if (snapshot.reachable) {
        this.#log.info({ nodeId: snapshot.status?.nodeId, state: snapshot.status?.state }, 'repository reachable');
      } else {
        this.#log.warn({ code: snapshot.errorCode }, 'repository unreachable; the MIB reports impCdrNodeState unreachable');
      }
    }

    this.#agent?.update(snapshot);
    return this.#detector.next(snapshot);
  }

  async #send(pending: PendingNotification[]): Promise<void> {
    const snapshot = this.#snapshot;
    for (const notification of pending) {
      try {
        await this.#agent?.notify(notification, snapshot, this.#detector.previousSoftwareVersion);
      } catch (error) {
        this.#log.warn({ err: error, notification: notification.name, feed: notification.feed }, 'notification not sent');
      }
    }
  }
}
