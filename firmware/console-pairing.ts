/**
 * Console option 3, pairing: shows the pair status, opens a pairing window, joins a peer's window and
 * unpairs. It calls the same functions as `cdrctl pair` and `cdrctl unpair`, through this node's
 * pairing daemon (imp-cdr-pairing).
 */

import {
  joinPeer,
  openPairingWindow,
  parseHostPort,
  pairStatusToJson,
  probePairingHostKey,
  readPairingStatus,
  unpairPeer,
  withPairingSocket,
} from '../services/cdrctl/commands/pair.js';
import { describeError, type ConsoleIo } from './console-io.js';

export interface PairingMenuOptions {
  controlSocketPath: string;
  pairingSocketPath: string;
}

const PAIRING_MENU = [
  ' 1) Open a pairing window on this node',
  ' 2) Pair with a peer that has an open window',
  ' 3) Unpair',
  ' 0) Back to the main menu',
];

/** Shows the pair status, then runs one pairing action chosen by the technician. */
export async function runPairingMenu(io: ConsoleIo, options: PairingMenuOptions): Promise<void> {
  const paired = await showPairStatus(io, options);
  io.print(PAIRING_MENU.join('\n'));
  const choice = await io.ask('Pairing choice: ');

  switch (choice) {
    case undefined:
    case '':
    case '0':
      return;
    case '1':
      await openWindow(io, options);
      return;
    case '2':
      await joinWindow(io, options);
      return;
    case '3':
      await unpair(io, options, paired);
      return;
    default:
      io.print(`Invalid choice "${choice}"; enter a number from 0 to 3.`);
  }
}

/** Prints the peer, the replication state and the pairing window; returns the peer's node id, if any. */
async function showPairStatus(io: ConsoleIo, options: PairingMenuOptions): Promise<string | undefined> {
  let value: ReturnType<typeof pairStatusToJson>;
  let daemonError: string | undefined;
  try {
    const read = await readPairingStatus(options.controlSocketPath, options.pairingSocketPath);
    value = pairStatusToJson(read.status, read.daemon);
    daemonError = read.daemonError;
  } catch (error) {
    io.print(`Pair status unavailable: ${describeError(error)}`);
    return undefined;
  }

  const peer = value.peer;
  io.print(`Node ${value.nodeId}: ${peer ? `paired with ${peer.nodeId} at ${peer.host}, replication ${value.replicationState}` : 'not paired'}.`);
  if (peer) {
    io.print(`  peer SSH host key ${peer.sshHostKeyFingerprint}`);
  }
  const window = value.window;
  if (window) {
    io.print(`This node's SSH host key ${window.hostKeyFingerprint} on ${window.listen}.`);
    io.print(window.state === 'closed' ? 'Pairing window closed.' : `Pairing window ${window.state} until ${window.expiresAt}.`);
  } else {
    io.print(`Pairing daemon unavailable: ${daemonError}`);
  }
  return peer?.nodeId;
}

async function openWindow(io: ConsoleIo, options: PairingMenuOptions): Promise<void> {
  try {
    const opened = await withPairingSocket(options.pairingSocketPath, (client) => openPairingWindow(client, 0));
    io.print(`Pairing window open until ${opened.expiresAt} on ${opened.listen}.`);
    io.print(`Pairing code:  ${opened.code}`);
    io.print(`SSH host key:  ${opened.hostKeyFingerprint}`);
    io.print(`On the other node choose 3, then 2, and enter this node's address with port ${opened.listen.split(':').pop()}.`);
    io.print(`Check that it shows the same SSH host key. ${opened.maxAttempts} wrong codes lock the window.`);
  } catch (error) {
    io.print(`Pairing window not opened: ${describeError(error)}`);
  }
}

async function joinWindow(io: ConsoleIo, options: PairingMenuOptions): Promise<void> {
  const target = await io.ask('Peer pairing address, HOST or HOST:PORT (port 7302 by default; empty to cancel): ');
  if (!target) {
    return;
  }

  try {
    const { host, port } = parseHostPort(target);
    await withPairingSocket(options.pairingSocketPath, async (client) => {
      const fingerprint = await probePairingHostKey(client, host, port);
      io.print(`The pairing service at ${host}:${port} has SSH host key\n  ${fingerprint}`);
      const confirmed = await io.ask('Is this the SSH host key that node shows? Type yes to confirm: ');
      if (confirmed?.toLowerCase() !== 'yes') {
        io.print('Host key not confirmed; nothing was changed.');
        return;
      }

      const code = await io.ask('Pairing code: ');
      if (!code) {
        io.print('No pairing code entered; nothing was changed.');
        return;
      }
      const peer = await joinPeer(client, { host, port, hostKeyFingerprint: fingerprint, code });
      io.print(`Paired with ${peer.nodeId} (replication ${peer.host}:${peer.replicationPort}, SSH host key ${peer.sshHostKeyFingerprint}).`);
    });
  } catch (error) {
    io.print(`Pairing failed: ${describeError(error)}`);
  }
}

async function unpair(io: ConsoleIo, options: PairingMenuOptions, peerNodeId: string | undefined): Promise<void> {
  if (!peerNodeId) {
    io.print('This node has no peer; nothing to unpair.');
    return;
  }
  const confirmed = await io.ask(`Forget peer ${peerNodeId} on both nodes? Type yes to confirm: `);
  if (confirmed !== 'yes') {
    io.print('Unpair cancelled; nothing was changed.');
    return;
  }

  try {
    await withPairingSocket(options.pairingSocketPath, (client) => unpairPeer(client, false));
    io.print(`Unpaired from ${peerNodeId} on both nodes.`);
    return;
  } catch (error) {
    io.print(`Unpair failed: ${describeError(error)}`);
  }

  // A dead peer cannot confirm over SSH; forgetting it here only is what `cdrctl unpair --local-only` does.
  const localOnly = await io.ask(`Forget peer ${peerNodeId} on this node only? Type yes to confirm: `);
  if (localOnly !== 'yes') {
    io.print('Unpair cancelled; this node still has its peer.');
    return;
  }
  try {
    await withPairingSocket(options.pairingSocketPath, (client) => unpairPeer(client, true));
    io.print(`Unpaired from ${peerNodeId} on this node only; unpair on the peer too if it still runs.`);
  } catch (error) {
    io.print(`Unpair failed: ${describeError(error)}`);
  }
}
