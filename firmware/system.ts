/**
 * The firmware system actions on an appliance: dpkg installs the payload, systemctl restarts the
 * units, and readiness is read from systemd and the repository's control socket.
 */

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { promisify } from 'node:util';

import { ControlClient } from '../modules/protocol/control-client.js';
import type { impcdr } from '../modules/protocol/generated/messages.js';
import type { FirmwareSystem } from './apply.js';

const execFileAsync = promisify(execFile);

/** The units apply restarts, with the entry point each runs. */
const UNITS = [
  { unit: 'imp-cdr-repository.service', main: '/opt/imp-cdr/dist/services/repository/main.js' },
  { unit: 'imp-cdr-snmp.service', main: '/opt/imp-cdr/dist/services/snmp/main.js' },
  { unit: 'imp-cdr-pairing.service', main: '/opt/imp-cdr/dist/services/pairing/main.js' },
];
const POLL_INTERVAL_MS = 1000;
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
   * on READY=1), the repository responds on its control socket and, on a paired node, its `pair_status`
   * reports replication from the peer as `tailing`.
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
      return peerLinkFailure(pairStatus ?? {});
    } catch (error) {
      return `control request failed: ${(error as Error).message}`;
    } finally {
      client.close();
    }
  }
}

/**
 * Checks the peer link in a `pair_status` reply: an unpaired node passes, and a paired node passes only
 * once its replication puller is `tailing` the peer's log. Returns the failure, or undefined.
 */
export function peerLinkFailure(pairStatus: impcdr.v1.IPairStatus): string | undefined {
  const peer = pairStatus.peer;
  if (!peer?.nodeId) {
    return undefined;
  }
  const state = pairStatus.replicationState || 'unknown';
  if (state === 'tailing') {
    return undefined;
  }
  return `replication from peer ${peer.nodeId} (${peer.host}:${peer.replicationPort}) is ${state}, not tailing`;
}
