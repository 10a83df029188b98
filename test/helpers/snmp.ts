/**
 * Net-SNMP peers for the SNMP tests and benchmark. snmpd (master agent with an AgentX TCP socket) and
 * snmptrapd each run on 127.0.0.1 with free ports, a temporary configuration and a persistent folder.
 * Also the imp-cdr-snmp process, and the Net-SNMP command-line tools with IMP-CDR-MIB loaded.
 */

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { ControlClient } from '../../modules/protocol/control-client.js';
import { ROOT, type TestNode } from './node.js';

const execFileAsync = promisify(execFile);

export const SNMP_MAIN = join(ROOT, 'dist', 'services', 'snmp', 'main.js');
export const MIB_DIR = join(ROOT, 'packaging', 'mib');
/** SNMPv2-SMI, SNMPv2-TC, SNMPv2-CONF and SNMPv2-MIB as shipped with the net-snmp npm package; Debian's snmp package lacks them. */
export const BASE_MIB_DIR = join(ROOT, 'node_modules', 'net-snmp', 'lib', 'mibs');

/** Environment for Net-SNMP tools: only the MIB modules named, from the two folders above. */
export function netSnmpEnv(persistentDir?: string): NodeJS.ProcessEnv {
  return {
    ...process.env,
    MIBDIRS: `${BASE_MIB_DIR}:${MIB_DIR}`,
    MIBS: 'SNMPv2-MIB:IMP-CDR-MIB',
    ...(persistentDir ? { SNMP_PERSISTENT_DIR: persistentDir } : {}),
  };
}

/** A USM user as both the tools and cdr.yaml describe it. */
export const NOC_USER = { name: 'noc', authPassphrase: 'noc-auth-passphrase', privPassphrase: 'noc-priv-passphrase' };
/** Fixed engine id of the standalone agent in tests, so snmptrapd can know the trap sender's keys. */
export const TEST_ENGINE_ID = '80001f88040102030405060708';

/** Command-line options of an authPriv SHA-256/AES-128 request as NOC_USER. */
export function v3Args(user = NOC_USER): string[] {
  return ['-v3', '-l', 'authPriv', '-u', user.name, '-a', 'SHA-256', '-A', user.authPassphrase, '-x', 'AES', '-X', user.privPassphrase];
}

/** Runs a Net-SNMP tool (snmpget, snmpwalk, ...) with a 1 s timeout and one retry. */
export async function netSnmp(tool: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileAsync(tool, ['-t', '1', '-r', '1', ...args], { env: netSnmpEnv(), maxBuffer: 64 * 1024 * 1024 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: typeof failed.code === 'number' ? failed.code : 1, stdout: failed.stdout ?? '', stderr: failed.stderr ?? '' };
  }
}

/** Finds a free UDP port on 127.0.0.1. Another process may take it between the check and its use. */
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolveBound) => socket.bind(0, '127.0.0.1', () => resolveBound()));
  const { port } = socket.address();
  await new Promise<void>((resolveClosed) => socket.close(() => resolveClosed()));
  return port;
}

/** Finds a free TCP port on 127.0.0.1. */
export async function freeTcpPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolveListening) => server.listen(0, '127.0.0.1', () => resolveListening()));
  const address = server.address();
  await new Promise<void>((resolveClosed) => server.close(() => resolveClosed()));
  return typeof address === 'object' && address ? address.port : 0;
}

/** A child process with its output collected line by line. */
export interface Peer {
  process: ChildProcess;
  output: string[];
  dir: string;
  /** Resolves with the first output line that contains `text`, or rejects after `timeoutMs`. */
  waitFor(text: string, timeoutMs?: number): Promise<string>;
  /** SIGTERM, then wait for exit. */
  stop(): Promise<void>;
}

function startPeer(command: string, args: string[], dir: string, env: NodeJS.ProcessEnv): Peer {
  const child = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  const output: string[] = [];
  const waiters: { text: string; resolve: (line: string) => void }[] = [];
  let exited = false;
  const exit = new Promise<void>((resolveExit) =>
    child.once('exit', () => {
      exited = true;
      resolveExit();
    }),
  );

  for (const stream of [child.stdout!, child.stderr!]) {
    let pending = '';
    stream.on('data', (chunk: Buffer) => {
      const lines = (pending + chunk.toString('utf8')).split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        output.push(line);
        for (const waiter of [...waiters]) {
          if (line.includes(waiter.text)) {
            waiters.splice(waiters.indexOf(waiter), 1);
            waiter.resolve(line);
          }
        }
      }
    });
  }

  return {
    process: child,
    output,
    dir,
    waitFor(text, timeoutMs = 15_000) {
      const seen = output.find((line) => line.includes(text));
      if (seen) {
        return Promise.resolve(seen);
      }
      return new Promise((resolveLine, rejectLine) => {
        const timer = setTimeout(() => rejectLine(new Error(`no line with "${text}" after ${timeoutMs} ms from ${command}:\n${output.join('\n')}`)), timeoutMs);
        waiters.push({
          text,
          resolve: (line) => {
            clearTimeout(timer);
            resolveLine(line);
          },
        });
      });
    },
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
      }
      await exit;
    },
  };
}

/** Waits until something accepts TCP connections on 127.0.0.1:`port`, for at most `timeoutMs`. */
export async function waitForTcp(port: number, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const connected = await new Promise<boolean>((resolveAttempt) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => {
        socket.destroy();
        resolveAttempt(true);
      });
      socket.once('error', () => resolveAttempt(false));
    });
    if (connected) {
      return;
    }
    await new Promise((resolveDelay) => setTimeout(resolveDelay, 100));
  }
  throw new Error(`nothing accepts connections on 127.0.0.1:${port} after ${timeoutMs} ms`);
}

export interface Snmpd extends Peer {
  udpPort: number;
  agentxPort: number;
}

/**
 * Starts snmpd as master agent: SNMP on 127.0.0.1:`udpPort`, AgentX on tcp:127.0.0.1:`agentxPort`,
 * NOC_USER with authPriv read access, and v2c traps to `trapPort` when given.
 */
export async function startSnmpd(options: { udpPort?: number; agentxPort?: number; trapPort?: number; dir?: string } = {}): Promise<Snmpd> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'imp-cdr-snmpd-'));
  const udpPort = options.udpPort ?? (await freeUdpPort());
  const agentxPort = options.agentxPort ?? (await freeTcpPort());
  mkdirSync(join(dir, 'persist'), { recursive: true });
  const configPath = join(dir, 'snmpd.conf');
  writeFileSync(
    configPath,
    [
      `agentaddress udp:127.0.0.1:${udpPort}`,
      'master agentx',
      `agentXSocket tcp:127.0.0.1:${agentxPort}`,
      `createUser ${NOC_USER.name} SHA-256 ${NOC_USER.authPassphrase} AES ${NOC_USER.privPassphrase}`,
      `rouser ${NOC_USER.name} priv`,
      ...(options.trapPort ? [`trap2sink 127.0.0.1:${options.trapPort} public`] : []),
      '',
    ].join('\n'),
  );
  // -C reads only this configuration, -Lo logs to stdout, and MIBS='' loads no MIB files.
  const peer = startPeer('snmpd', ['-f', '-Lo', '-C', '-c', configPath, '-p', join(dir, 'snmpd.pid')], dir, {
    ...netSnmpEnv(join(dir, 'persist')),
    MIBS: '',
  });
  await waitForTcp(agentxPort);
  return { ...peer, udpPort, agentxPort };
}

export interface Snmptrapd extends Peer {
  port: number;
}

/** Starts snmptrapd on 127.0.0.1 with community `public` and NOC_USER (engine TEST_ENGINE_ID) allowed to log. */
export async function startSnmptrapd(): Promise<Snmptrapd> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-snmptrapd-'));
  const port = await freeUdpPort();
  mkdirSync(join(dir, 'persist'), { recursive: true });
  const configPath = join(dir, 'snmptrapd.conf');
  writeFileSync(
    configPath,
    [
      'authCommunity log public',
      `createUser -e 0x${TEST_ENGINE_ID} ${NOC_USER.name} SHA-256 ${NOC_USER.authPassphrase} AES ${NOC_USER.privPassphrase}`,
      `authUser log ${NOC_USER.name} priv`,
      '',
    ].join('\n'),
  );
  const peer = startPeer('snmptrapd', ['-f', '-Lo', '-C', '-c', configPath, '-p', join(dir, 'snmptrapd.pid'), `udp:127.0.0.1:${port}`], dir, netSnmpEnv(join(dir, 'persist')));
  await peer.waitFor('NET-SNMP version');
  return { ...peer, port };
}

/** Starts imp-cdr-snmp with `configPath` and waits until its agent is ready. */
export async function startSnmpAgent(configPath: string, dir: string): Promise<Peer> {
  const peer = startPeer(process.execPath, [SNMP_MAIN, '--config', configPath], dir, process.env);
  await peer.waitFor('"snmp agent ready"');
  return peer;
}

/** Removes a peer's temporary folder. */
export function removePeer(peer: Peer): void {
  rmSync(peer.dir, { recursive: true, force: true });
}

/** DateAndTime in UTC as the Net-SNMP tools print it, with tenths of a second. */
export function dateAndTimeText(ms: number): string {
  const date = new Date(ms);
  const tenths = Math.floor(date.getUTCMilliseconds() / 100);
  return `${date.getUTCFullYear()}-${date.getUTCMonth() + 1}-${date.getUTCDate()},${date.getUTCHours()}:${date.getUTCMinutes()}:${date.getUTCSeconds()}.${tenths},+0:0`;
}

/** lastSuccessMs of feed `id` as the control socket of `node` reports it; cdrctl prints only its age. */
export async function feedLastSuccessMs(node: TestNode, id: string): Promise<number> {
  const control = await ControlClient.connect(node.socketPath);
  try {
    const response = await control.call({ feedStatus: { id } });
    return Number(response.feeds!.feeds![0]!.lastSuccessMs);
  } finally {
    control.close();
  }
}
