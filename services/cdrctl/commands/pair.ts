/**
 * `cdrctl pair open | join | status | close`: pairing this node with another over SSH, through the
 * pairing daemon (imp-cdr-pairing) of this node.
 */

import { X509Certificate } from 'node:crypto';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline/promises';
import { parseArgs } from 'node:util';

import { resolveUnder } from '../../common/config.js';
import { CdrError } from '../../common/errors.js';
import { ControlClient } from '../../../modules/protocol/control-client.js';
import type { impcdr } from '../../../modules/protocol/generated/messages.js';
import { checkFingerprint } from '../../pairing/host-key.js';
import { PairingClient } from '../../pairing/local-client.js';
import { EXIT_SUCCESS, usageError, type Command, type CommandContext } from '../command.js';

/** Port of the pairing SSH listener when HOST has none. */
export const DEFAULT_PAIRING_PORT = 7302;

export const pairCommand: Command = {
  name: 'pair',
  usage: [
    'pair open [--seconds N]               open a pairing window (default pairing.windowSeconds) and',
    '                                      print the one-time code and this node\'s SSH host key fingerprint',
    'pair join HOST[:PORT] [--fingerprint SHA256:...] [--code CODE]',
    '                                      pair with the node at HOST (pairing port, default 7302);',
    '                                      asks for the fingerprint confirmation and the code when not given',
    'pair status [--json]                  the peer, its fingerprints, the replication state and the window',
    'pair close                            close the pairing window before it expires',
  ],
  async run(context, args) {
    const { values, positionals } = parseArgs({
      args,
      options: {
        seconds: { type: 'string' },
        fingerprint: { type: 'string' },
        code: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
      allowPositionals: true,
      strict: true,
    });
    const [subcommand, ...rest] = positionals;

    switch (subcommand) {
      case 'open':
        if (rest.length > 0) throw usageError(`pair open takes no arguments besides --seconds N, got "${rest.join(' ')}"`);
        return openCommand(context, values.seconds);
      case 'join':
        if (rest.length !== 1) throw usageError(`pair join needs exactly one HOST[:PORT], got ${rest.length}`);
        return join(context, rest[0]!, values.fingerprint, values.code);
      case 'status':
        if (rest.length > 0) throw usageError(`pair status takes no arguments besides --json, got "${rest.join(' ')}"`);
        return status(context, values.json);
      case 'close':
        if (rest.length > 0) throw usageError(`pair close takes no arguments, got "${rest.join(' ')}"`);
        return withPairing(context, async (client) => {
          await client.call({ close: {} });
          context.stdout('pairing window closed\n');
          return EXIT_SUCCESS;
        });
      default:
        throw usageError(
          subcommand === undefined ? 'pair needs a subcommand: open, join, status or close' : `unknown pair subcommand "${subcommand}"; expected open, join, status or close`,
        );
    }
  },
};

/** Connects to this node's pairing daemon, runs `action`, and closes the connection. */
export async function withPairing<T>(context: CommandContext, action: (client: PairingClient) => Promise<T>): Promise<T> {
  const config = context.loadConfig();
  return withPairingSocket(resolveUnder(config.paths.run, config.pairing.socket), action);
}

/** Connects to the pairing daemon at `socketPath`, runs `action`, and closes the connection. */
export async function withPairingSocket<T>(socketPath: string, action: (client: PairingClient) => Promise<T>): Promise<T> {
  const client = await PairingClient.connect(socketPath);
  try {
    return await action(client);
  } finally {
    client.close();
  }
}

/** Pairing window that `open` started: the one-time code and what the joining node checks. */
export interface OpenedWindow {
  code: string;
  hostKeyFingerprint: string;
  /** Address and port of the pairing SSH listener, such as "127.0.0.1:7302". */
  listen: string;
  expiresAt: string;
  maxAttempts: number;
}

/** Opens a pairing window for `seconds`, or for `pairing.windowSeconds` when `seconds` is 0. */
export async function openPairingWindow(client: PairingClient, seconds: number): Promise<OpenedWindow> {
  const { opened } = await client.call({ open: { seconds } });
  return {
    code: opened!.code!,
    hostKeyFingerprint: opened!.hostKeyFingerprint!,
    listen: opened!.listen!,
    expiresAt: new Date(Number(opened!.expiresMs)).toISOString(),
    maxAttempts: opened!.maxAttempts ?? 0,
  };
}

/** Returns the SSH host key fingerprint of the pairing service at `host`:`port`, for the technician to confirm. */
export async function probePairingHostKey(client: PairingClient, host: string, port: number): Promise<string> {
  const { probe } = await client.call({ probe: { host, port } });
  return probe!.hostKeyFingerprint!;
}

/**
 * Pairs with the node at `host`:`port`, pinning `hostKeyFingerprint`, and returns the stored peer.
 *
 * @throws CdrError from the pairing daemon, such as `ERR_PAIR_CODE_INVALID` or `ERR_PAIR_FINGERPRINT_MISMATCH`
 */
export async function joinPeer(
  client: PairingClient,
  target: { host: string; port: number; hostKeyFingerprint: string; code: string },
): Promise<impcdr.v1.IPeerRecord> {
  const { pairStatus } = await client.call({ join: target });
  return pairStatus!.peer!;
}

/** Forgets the peer here and, unless `localOnly`, on the peer over SSH. */
export async function unpairPeer(client: PairingClient, localOnly: boolean): Promise<void> {
  await client.call({ unpair: { localOnly } });
}

/** Reads the pairing state from the repository and from the pairing daemon, which may be down. */
export async function readPairingStatus(
  controlSocketPath: string,
  pairingSocketPath: string,
): Promise<{ status: impcdr.v1.IPairStatus; daemon?: impcdr.v1.IDaemonStatus; daemonError?: string }> {
  const control = await ControlClient.connect(controlSocketPath);
  let status: impcdr.v1.IPairStatus;
  try {
    status = (await control.call({ pairStatus: {} })).pairStatus!;
  } finally {
    control.close();
  }

  try {
    const daemon = await withPairingSocket(pairingSocketPath, async (client) => (await client.call({ status: {} })).status!);
    return { status, daemon };
  } catch (error) {
    return { status, daemonError: error instanceof CdrError ? `${error.message} (${error.code})` : String(error) };
  }
}

async function openCommand(context: CommandContext, secondsText: string | undefined): Promise<number> {
  const seconds = secondsText === undefined ? 0 : Number(secondsText);
  if (secondsText !== undefined && (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600)) {
    throw usageError(`--seconds must be an integer from 1 to 3600, got "${secondsText}"`);
  }

  const opened = await withPairing(context, (client) => openPairingWindow(client, seconds));
  // A wildcard listener has no single address to show; the technician fills in this node's address.
  const port = opened.listen.split(':').pop();
  const host = opened.listen.slice(0, opened.listen.length - (port?.length ?? 0) - 1);
  const joinAddress = ['0.0.0.0', '::', '[::]', ''].includes(host) ? `THIS-ADDRESS:${port}` : opened.listen;
  context.stdout(
    [
      `pairing window open until ${opened.expiresAt} on ${opened.listen}`,
      `pairing code:           ${opened.code}`,
      `SSH host key:           ${opened.hostKeyFingerprint}`,
      `On the other node run:  cdrctl pair join ${joinAddress}`,
      `and check that it shows the same host key. ${opened.maxAttempts} wrong codes lock the window.`,
      '',
    ].join('\n'),
  );
  return EXIT_SUCCESS;
}

async function join(context: CommandContext, target: string, fingerprintOption: string | undefined, codeOption: string | undefined): Promise<number> {
  // Both are checked before any connection, so a typo is reported even when the daemon is down.
  const { host, port } = parseHostPort(target);
  const fingerprint = fingerprintOption === undefined ? undefined : checkFingerprint(fingerprintOption);

  const prompter = new Prompter();
  try {
    return await withPairing(context, (client) => joinWith(context, client, prompter, host, port, fingerprint, codeOption));
  } finally {
    prompter.close();
  }
}

async function joinWith(
  context: CommandContext,
  client: PairingClient,
  prompter: Prompter,
  host: string,
  port: number,
  fingerprintOption: string | undefined,
  codeOption: string | undefined,
): Promise<number> {
  let fingerprint: string;
  if (fingerprintOption !== undefined) {
    fingerprint = fingerprintOption;
  } else {
    fingerprint = await probePairingHostKey(client, host, port);
    const answer = await prompter.ask(
      context,
      `The pairing service at ${host}:${port} has SSH host key\n  ${fingerprint}\n` +
        'Is this the fingerprint "cdrctl pair open" shows on that node? (yes/no) ',
    );
    if (answer.trim().toLowerCase() !== 'yes') {
      throw new CdrError('ERR_PAIR_CANCELLED', `host key ${fingerprint} was not confirmed; nothing was changed`);
    }
  }

  const code = codeOption ?? (await prompter.ask(context, 'Pairing code: '));
  if (code.trim() === '') {
    throw usageError('the pairing code is empty; type the code "cdrctl pair open" printed on the other node');
  }

  const peer = await joinPeer(client, { host, port, hostKeyFingerprint: fingerprint, code: code.trim() });
  context.stdout(`paired with ${peer.nodeId} (replication ${peer.host}:${peer.replicationPort}, SSH host key ${peer.sshHostKeyFingerprint})\n`);
  return EXIT_SUCCESS;
}

async function status(context: CommandContext, json: boolean): Promise<number> {
  const config = context.loadConfig();
  const { status: pairStatus, daemon, daemonError } = await readPairingStatus(
    context.socketPath ? resolve(context.socketPath) : resolveUnder(config.paths.run, config.control.socket),
    resolveUnder(config.paths.run, config.pairing.socket),
  );

  const value = pairStatusToJson(pairStatus, daemon);
  if (json) {
    context.stdout(`${JSON.stringify({ ...value, ...(daemonError ? { pairingDaemonError: daemonError } : {}) }, null, 2)}\n`);
    return EXIT_SUCCESS;
  }

  const lines = [`node ${value.nodeId}: ${value.peer ? `paired with ${value.peer.nodeId}` : 'not paired'}, replication ${value.replicationState}`];
  if (value.peer) {
    lines.push(
      `  peer replication ${value.peer.host}:${value.peer.replicationPort}, IMP listener ${value.peer.impHost}:${value.peer.impPort}`,
      `  peer certificate SHA-256 ${value.peer.certificateFingerprint}`,
      `  peer SSH host key ${value.peer.sshHostKeyFingerprint}`,
      `  paired at ${value.peer.pairedAt}`,
    );
  }
  if (daemon) {
    const window = value.window!;
    lines.push(`this node's SSH host key ${window.hostKeyFingerprint} on ${window.listen}`);
    lines.push(
      window.state === 'closed'
        ? 'pairing window closed'
        : `pairing window ${window.state}, until ${window.expiresAt}, ${window.attempts} of ${window.maxAttempts} wrong codes`,
    );
  } else {
    lines.push(`pairing daemon: ${daemonError}`);
  }
  context.stdout(`${lines.join('\n')}\n`);
  return EXIT_SUCCESS;
}

/** Converts the pairing state of the repository and of the pairing daemon to plain JSON with ISO times. */
export function pairStatusToJson(status: impcdr.v1.IPairStatus, daemon: impcdr.v1.IDaemonStatus | undefined) {
  const peer = status.peer;
  return {
    nodeId: status.self?.nodeId ?? '',
    replicationState: status.replicationState ?? '',
    peer: peer?.nodeId
      ? {
          nodeId: peer.nodeId,
          host: peer.host ?? '',
          replicationPort: peer.replicationPort ?? 0,
          impHost: peer.impHost ?? '',
          impPort: peer.impPort ?? 0,
          certificateFingerprint: certificateFingerprint(peer.certificatePem ?? ''),
          sshHostKeyFingerprint: peer.sshHostKeyFingerprint ?? '',
          pairedAt: new Date(Number(peer.pairedMs ?? 0)).toISOString(),
        }
      : null,
    window: daemon
      ? {
          state: daemon.windowState ?? '',
          expiresAt: Number(daemon.expiresMs) ? new Date(Number(daemon.expiresMs)).toISOString() : null,
          attempts: daemon.attempts ?? 0,
          maxAttempts: daemon.maxAttempts ?? 0,
          hostKeyFingerprint: daemon.hostKeyFingerprint ?? '',
          listen: daemon.listen ?? '',
        }
      : null,
  };
}

/**
 * Splits "HOST", "HOST:PORT", "[IPV6]" or "[IPV6]:PORT"; the port defaults to DEFAULT_PAIRING_PORT.
 *
 * @throws CdrError `ERR_CLI_USAGE` for an empty host or a port outside 1 to 65535
 */
export function parseHostPort(target: string): { host: string; port: number } {
  const bracketed = /^\[([^\]]+)\](?::([^:]*))?$/.exec(target);
  const plain = /^([^:[\]]+)(?::([^:]*))?$/.exec(target);
  const match = bracketed ?? plain;
  if (!match) {
    throw usageError(`expected HOST, HOST:PORT or [IPV6]:PORT, got "${target}"`);
  }
  const host = match[1]!;
  const portText = match[2];
  const port = portText === undefined ? DEFAULT_PAIRING_PORT : Number(portText);
  if (!/^[0-9]+$/.test(portText ?? '1') || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw usageError(`the port in "${target}" must be an integer from 1 to 65535`);
  }
  return { host, port };
}

function certificateFingerprint(pem: string): string {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return '';
  }
}

/**
 * Reads the technician's replies line by line from standard input. One readline interface serves every question,
 * because a second interface would lose lines the first one had already buffered.
 */
class Prompter {
  readonly #lines: string[] = [];
  readonly #waiters: Array<(line: string | undefined) => void> = [];
  #interface: ReturnType<typeof createInterface> | undefined;
  #ended = false;

  /** Writes `question` to stderr and returns the next line of stdin. @throws CdrError `ERR_PAIR_CANCELLED` at end of input */
  async ask(context: CommandContext, question: string): Promise<string> {
    context.stderr(question);
    this.#start();
    const line = this.#lines.shift() ?? (this.#ended ? undefined : await new Promise<string | undefined>((resolveLine) => this.#waiters.push(resolveLine)));
    if (line === undefined) {
      throw new CdrError('ERR_PAIR_CANCELLED', 'standard input ended before a reply; nothing was changed');
    }
    return line;
  }

  close(): void {
    this.#interface?.close();
  }

  #start(): void {
    if (this.#interface) return;
    this.#interface = createInterface({ input: process.stdin, terminal: false });
    this.#interface.on('line', (line) => {
      const waiter = this.#waiters.shift();
      if (waiter) waiter(line);
      else this.#lines.push(line);
    });
    this.#interface.on('close', () => {
      this.#ended = true;
      for (const waiter of this.#waiters.splice(0)) waiter(undefined);
    });
  }
}
