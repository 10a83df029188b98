/**
 * The firmware system actions on an appliance: dpkg installs the payload, systemctl restarts the
 * units, and readiness is read from systemd and the repository's control socket.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { promisify } from 'node:util';

import { ControlClient } from '../modules/protocol/control-client.js';
import type { FirmwareSystem } from './apply.js';

const execFileAsync = promisify(execFile);

/** The units apply restarts, with the entry point each runs. */
const UNITS = [
  { unit: 'imp-cdr-repository.service', main: '/opt/imp-cdr/dist/services/repository/main.js' },
  { unit: 'imp-cdr-snmp.service', main: '/opt/imp-cdr/dist/services/snmp/main.js' },
  { unit: 'imp-cdr-api.service', main: '/opt/imp-cdr/dist/services/api/main.js' },
  { unit: 'imp-cdr-pairing.service', main: '/opt/imp-cdr/dist/services/pairing/main.js' },
];
const POLL_INTERVAL_MS = 1000;
const PEER_CONNECT_TIMEOUT_MS = 3000;
const INSTALL_TIMEOUT_MS = 600_000;

/** `FirmwareSystem` for an appliance where systemd runs as PID 1. */
export class SystemdFirmwareSystem implements FirmwareSystem {
  readonly #controlSocketPath: string;

  constructor(controlSocketPath: string) {
    this.#controlSocketPath = controlSocketPath;
  }

  async installedVersion(): Promise<string | undefined> {
    try {
      const { stdout } = await execFileAsync('dpkg-query', ['-W', '-f', '${Version}', 'imp-cdr']);
      return stdout.trim() || undefined;
    } catch {
      return undefined;
    }
  }

  async connectedOosVersions(): Promise<string[]> {
    try {
      const client = await ControlClient.connect(this.#controlSocketPath);
      try {
        const { status } = await client.call({ status: {} });
        return (status?.clients ?? []).map((client) => client.oosVersion ?? '');
      } finally {
        client.close();
      }
    } catch {
      return [];
    }
  }

  async install(debPath: string): Promise<void> {
    await execFileAsync('dpkg', ['-i', debPath], { timeout: INSTALL_TIMEOUT_MS });
  }

  async restart(): Promise<void> {
    await execFileAsync('systemctl', ['restart', 'imp-cdr.target']);
  }

  /**
   * Polls until every unit whose entry point is installed is active (Type=notify units become active
   * on READY=1), the repository responds on its control socket and, on a paired node, the peer's
   * replication port accepts a connection.
   */
  async waitReady(timeoutMs: number): Promise<string | undefined> {
    const deadline = Date.now() + timeoutMs;
    let failure: string | undefined = 'not checked yet';
    while (Date.now() < deadline) {
      failure = await this.#readiness();
      if (failure === undefined) {
        return undefined;
      }
      await new Promise((resolveWait) => setTimeout(resolveWait, POLL_INTERVAL_MS));
    }
    return `not ready within ${timeoutMs} ms: ${failure}`;
  }

  async #readiness(): Promise<string | undefined> {
    for (const { unit, main } of UNITS) {
      if (!existsSync(main)) {
        continue;
      }
      const state = await execFileAsync('systemctl', ['is-active', unit]).then(
        ({ stdout }) => stdout.trim(),
        (error: { stdout?: string }) => error.stdout?.trim() || 'unknown',
      );
      if (state !== 'active') {
        return `${unit} is ${state}`;
      }
    }

    let client: ControlClient;
    try {
      client = await ControlClient.connect(this.#controlSocketPath);
    } catch (error) {
      return (error as Error).message;
    }
    try {
      const { pairStatus } = await client.call({ pairStatus: {} });
      const peer = pairStatus?.peer;
      if (!peer?.host) {
        return undefined;
      }
      // TODO: use the replication state once the repository reports it; until then a TCP connect to
      // the peer's replication port is the peer link check.
      return await checkTcp(peer.host, Number(peer.replicationPort));
    } catch (error) {
      return `control request failed: ${(error as Error).message}`;
    } finally {
      client.close();
    }
  }
}

function checkTcp(host: string, port: number): Promise<string | undefined> {
  return new Promise((resolveCheck) => {
    const socket = connect({ host, port, timeout: PEER_CONNECT_TIMEOUT_MS });
    socket.once('connect', () => {
      socket.destroy();
      resolveCheck(undefined);
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolveCheck(`peer ${host}:${port} did not answer within ${PEER_CONNECT_TIMEOUT_MS} ms`);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolveCheck(`peer ${host}:${port} is unreachable: ${error.code ?? error.message}`));
  });
}
