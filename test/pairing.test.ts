import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join as joinPath } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';

import test from 'ava';
import ssh2 from 'ssh2';

import { parseHostPort } from '../services/cdrctl/commands/pair.js';
import { fingerprintOf } from '../services/pairing/host-key.js';
import { createSelfSignedCertificate } from '../services/repository/tls-material.js';
import { CDRCTL_MAIN, removeNode, restartNode, type TestNode } from './helpers/node.js';
import {
  cdrctlWithInput,
  errorCode,
  peerFile,
  runTool,
  startPairingDaemon,
  startPairingNode,
  type CommandResult,
  type PairingNode,
} from './helpers/pairing.js';

// Two nodes pair and unpair many times; the tests run one after the other and each starts unpaired.
let a: PairingNode;
let b: PairingNode;
const extra: PairingNode[] = [];

test.before(async () => {
  [a, b] = await Promise.all([startPairingNode(), startPairingNode()]);
});

test.after.always(async () => {
  for (const node of [a, b, ...extra]) {
    if (!node) continue;
    await node.daemon.stop();
    await node.node.stop();
    removeNode(node.node);
  }
});

test.beforeEach(async () => {
  for (const node of [a, b]) {
    await cdrctlWithInput(node.node, ['unpair', '--local-only']);
    await cdrctlWithInput(node.node, ['pair', 'close']);
  }
});

interface Opened {
  code: string;
  fingerprint: string;
  port: number;
  /** The `cdrctl pair join ...` line that `pair open` tells the technician to run on the other node. */
  joinCommand: string;
}

async function open(node: PairingNode, args: string[] = []): Promise<Opened> {
  const result = await cdrctlWithInput(node.node, ['pair', 'open', ...args]);
  if (result.code !== 0) throw new Error(`pair open failed: ${result.stderr}`);
  return {
    code: /^pairing code: +(\S+)$/m.exec(result.stdout)![1]!,
    fingerprint: /^SSH host key: +(\S+)$/m.exec(result.stdout)![1]!,
    port: Number(/ on 127\.0\.0\.1:(\d+)$/m.exec(result.stdout)![1]),
    joinCommand: /^On the other node run: +(.+)$/m.exec(result.stdout)![1]!,
  };
}

function join(node: PairingNode, target: PairingNode, fingerprint: string, code: string): Promise<CommandResult> {
  return cdrctlWithInput(node.node, ['pair', 'join', `127.0.0.1:${target.daemon.port}`, '--fingerprint', fingerprint, '--code', code]);
}

interface PairJson {
  nodeId: string;
  replicationState: string;
  peer: { nodeId: string; host: string; replicationPort: number; sshHostKeyFingerprint: string; certificateFingerprint: string } | null;
  window: { state: string; attempts: number; maxAttempts: number; hostKeyFingerprint: string } | null;
}

async function pairStatus(node: PairingNode): Promise<PairJson> {
  const result = await cdrctlWithInput(node.node, ['pair', 'status', '--json']);
  if (result.code !== 0) throw new Error(`pair status failed: ${result.stderr}`);
  return JSON.parse(result.stdout) as PairJson;
}

/** What a rejection must leave unchanged on a node: its peer.json and the peer in pair status. */
async function peerState(node: PairingNode): Promise<{ file: string | null; peer: PairJson['peer']; replicationState: string }> {
  const status = await pairStatus(node);
  return { file: peerFile(node.node), peer: status.peer, replicationState: status.replicationState };
}

function replicationCertificate(node: TestNode): string {
  return readFileSync(joinPath(node.dir, 'tls', 'replication.pem'), 'utf8');
}

test.serial('pair open fingerprint matches ssh-keyscan', async (t) => {
  const opened = await open(b);
  const scan = await runTool('ssh-keyscan', ['-T', '5', '-t', 'ed25519', '-p', String(b.daemon.port), '127.0.0.1']);
  t.is(scan.code, 0, scan.stderr);
  const fingerprint = await runTool('ssh-keygen', ['-l', '-f', '-'], scan.stdout);

  t.is(fingerprint.code, 0, fingerprint.stderr);
  t.is(fingerprint.stdout.trim(), `256 ${opened.fingerprint} [127.0.0.1]:${b.daemon.port} (ED25519)`);
  t.is(opened.fingerprint, b.daemon.fingerprint);
  t.regex(opened.code, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/);
});

test.serial('pairing stores both peer records', async (t) => {
  const opened = await open(b);
  t.is(opened.joinCommand, `cdrctl pair join 127.0.0.1:${opened.port}`);
  const result = await join(a, b, opened.fingerprint, opened.code);
  t.is(result.code, 0, result.stderr);

  const statusA = await pairStatus(a);
  const statusB = await pairStatus(b);
  t.is(statusA.peer?.nodeId, statusB.nodeId);
  t.is(statusB.peer?.nodeId, statusA.nodeId);
  t.is(statusA.peer?.sshHostKeyFingerprint, b.daemon.fingerprint);
  t.is(statusB.peer?.sshHostKeyFingerprint, a.daemon.fingerprint);
  t.is(statusA.peer?.replicationPort, b.replicationPort);
  t.is(statusB.peer?.replicationPort, a.replicationPort);
  t.is(statusB.window?.state, 'closed', 'a completed pairing closes the window');
  // Replication starts with the stored records: both nodes reach the tailing state.
  const deadline = Date.now() + 15_000;
  let states = [statusA.replicationState, statusB.replicationState];
  while (states.some((state) => state !== 'tailing') && Date.now() < deadline) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 200));
    states = [(await pairStatus(a)).replicationState, (await pairStatus(b)).replicationState];
  }
  t.deepEqual(states, ['tailing', 'tailing']);

  const recordA = JSON.parse(peerFile(a.node)!) as { nodeId: string; certificatePem: string };
  const recordB = JSON.parse(peerFile(b.node)!) as { nodeId: string; certificatePem: string };
  t.is(recordA.certificatePem, replicationCertificate(b.node), 'A pins B\'s replication certificate');
  t.is(recordB.certificatePem, replicationCertificate(a.node), 'B pins A\'s replication certificate');
  t.regex(result.stdout, new RegExp(`^paired with ${statusB.nodeId} `));
});

test.serial('pairing code is never logged', async (t) => {
  const opened = await open(b);
  const wrong = await join(a, b, opened.fingerprint, 'ZZZZ-ZZZZ');
  t.is(errorCode(wrong), 'ERR_PAIR_CODE_INVALID');
  const result = await join(a, b, opened.fingerprint, opened.code);
  t.is(result.code, 0, result.stderr);

  const logs = [...a.daemon.output, ...b.daemon.output, ...a.node.output, ...b.node.output].join('\n');
  t.false(logs.includes(opened.code), 'the code as shown');
  t.false(logs.includes(opened.code.replace('-', '')), 'the code without its hyphen');
  t.false(logs.includes('ZZZZ-ZZZZ'), 'a wrong code');
});

const rejections: Array<{ name: string; code: string; run: () => Promise<CommandResult> }> = [
  {
    name: 'wrong code',
    code: 'ERR_PAIR_CODE_INVALID',
    run: async () => {
      const opened = await open(b);
      return join(a, b, opened.fingerprint, opened.code === 'ABCD-EFGH' ? 'ABCD-EFGJ' : 'ABCD-EFGH');
    },
  },
  {
    name: 'no window open',
    code: 'ERR_PAIR_WINDOW_CLOSED',
    run: async () => join(a, b, b.daemon.fingerprint, 'ABCD-EFGH'),
  },
  {
    name: 'expired window',
    code: 'ERR_PAIR_WINDOW_EXPIRED',
    run: async () => {
      const opened = await open(b, ['--seconds', '1']);
      await sleep(1500);
      return join(a, b, opened.fingerprint, opened.code);
    },
  },
  {
    name: 'three wrong codes lock the window',
    code: 'ERR_PAIR_TOO_MANY_ATTEMPTS',
    run: async () => {
      const opened = await open(b);
      for (let attempt = 0; attempt < 3; attempt += 1) {
        const wrong = await join(a, b, opened.fingerprint, 'ZZZZ-ZZZZ');
        if (errorCode(wrong) !== 'ERR_PAIR_CODE_INVALID') throw new Error(`attempt ${attempt + 1}: ${wrong.stderr}`);
      }
      return join(a, b, opened.fingerprint, opened.code);
    },
  },
  {
    name: 'fingerprint of another key',
    code: 'ERR_PAIR_FINGERPRINT_MISMATCH',
    run: async () => {
      const opened = await open(b);
      return join(a, b, a.daemon.fingerprint, opened.code);
    },
  },
  {
    name: 'fingerprint not in SHA256 form',
    code: 'ERR_PAIR_FINGERPRINT_INVALID',
    run: async () => {
      const opened = await open(b);
      return join(a, b, opened.fingerprint.replace('SHA256:', 'MD5:'), opened.code);
    },
  },
  {
    name: 'fingerprint one character short',
    code: 'ERR_PAIR_FINGERPRINT_INVALID',
    run: async () => {
      const opened = await open(b);
      return join(a, b, opened.fingerprint.slice(0, -1), opened.code);
    },
  },
  {
    name: 'join of its own window',
    code: 'ERR_PAIR_SELF',
    run: async () => {
      const opened = await open(a);
      return join(a, a, opened.fingerprint, opened.code);
    },
  },
  {
    name: 'nothing listening on the port',
    code: 'ERR_PAIR_UNREACHABLE',
    run: async () => cdrctlWithInput(a.node, ['pair', 'join', '127.0.0.1:1', '--fingerprint', b.daemon.fingerprint, '--code', 'ABCD-EFGH']),
  },
];

for (const rejection of rejections) {
  test.serial(`pairing rejected: ${rejection.name}`, async (t) => {
    const beforeA = await peerState(a);
    const beforeB = await peerState(b);

    const result = await rejection.run();

    t.is(result.code, 1, result.stderr);
    t.is(errorCode(result), rejection.code, result.stderr);
    t.deepEqual(await peerState(a), beforeA, 'node A unchanged');
    t.deepEqual(await peerState(b), beforeB, 'node B unchanged');
    t.is(beforeA.file, null);
    t.is(beforeB.file, null);
  });
}

test.serial('two wrong codes then right one pairs', async (t) => {
  const opened = await open(b);
  for (const left of [2, 1]) {
    const wrong = await join(a, b, opened.fingerprint, 'ZZZZ-ZZZZ');
    t.is(errorCode(wrong), 'ERR_PAIR_CODE_INVALID');
    t.regex(wrong.stderr, new RegExp(`${left} attempts? left`));
  }
  t.is((await pairStatus(b)).window?.attempts, 2);

  const result = await join(a, b, opened.fingerprint, opened.code.toLowerCase());
  t.is(result.code, 0, result.stderr);
  t.is((await pairStatus(b)).peer?.nodeId, (await pairStatus(a)).nodeId);
});

test.serial('rejection keeps an existing pairing', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);
  const beforeA = await peerState(a);
  const beforeB = await peerState(b);

  const again = await open(b);
  const wrong = await join(a, b, again.fingerprint, 'ZZZZ-ZZZZ');
  t.is(errorCode(wrong), 'ERR_PAIR_CODE_INVALID');
  const mismatch = await join(a, b, a.daemon.fingerprint, again.code);
  t.is(errorCode(mismatch), 'ERR_PAIR_FINGERPRINT_MISMATCH');

  t.deepEqual(await peerState(a), beforeA);
  t.deepEqual(await peerState(b), beforeB);
});

test.serial('pair open window length limits', async (t) => {
  for (const seconds of ['1', '3600']) {
    const result = await cdrctlWithInput(b.node, ['pair', 'open', '--seconds', seconds]);
    t.is(result.code, 0, `--seconds ${seconds}: ${result.stderr}`);
  }
  for (const seconds of ['0', '3601', '1.5', 'ten']) {
    const result = await cdrctlWithInput(b.node, ['pair', 'open', '--seconds', seconds]);
    t.is(result.code, 2, `--seconds ${seconds}`);
    t.is(errorCode(result), 'ERR_CLI_USAGE', `--seconds ${seconds}`);
  }
});

test.serial('join target parsing', (t) => {
  t.deepEqual(parseHostPort('127.0.0.1'), { host: '127.0.0.1', port: 7302 });
  t.deepEqual(parseHostPort('127.0.0.1:1'), { host: '127.0.0.1', port: 1 });
  t.deepEqual(parseHostPort('127.0.0.1:65535'), { host: '127.0.0.1', port: 65535 });
  t.deepEqual(parseHostPort('[::1]:7400'), { host: '::1', port: 7400 });
  t.deepEqual(parseHostPort('[::1]'), { host: '::1', port: 7302 });
  for (const bad of ['127.0.0.1:0', '127.0.0.1:65536', '127.0.0.1:', ':7302', '::1', '127.0.0.1:72a', '']) {
    const error = t.throws(() => parseHostPort(bad), undefined, bad);
    t.is((error as { code?: string }).code, 'ERR_CLI_USAGE', bad);
  }
});

test.serial('keyboard-interactive client rejected, daemon serves on', async (t) => {
  const scan = await runTool('ssh-keyscan', ['-T', '5', '-t', 'ed25519', '-p', String(b.daemon.port), '127.0.0.1']);
  const knownHosts = joinPath(b.node.dir, 'known_hosts');
  writeFileSync(knownHosts, scan.stdout);

  const ssh = await runTool('ssh', [
    '-F', '/dev/null',
    '-p', String(b.daemon.port),
    '-o', `UserKnownHostsFile=${knownHosts}`,
    '-o', 'StrictHostKeyChecking=yes',
    '-o', 'PreferredAuthentications=keyboard-interactive',
    '-o', 'KbdInteractiveAuthentication=yes',
    '-o', 'PasswordAuthentication=no',
    '-o', 'PubkeyAuthentication=no',
    '-o', 'IdentityAgent=none',
    '-o', 'ConnectTimeout=5',
    '-o', 'NumberOfPasswordPrompts=1',
    'cdr-pair@127.0.0.1',
    'true',
  ], '');

  t.is(ssh.code, 255);
  t.regex(ssh.stderr, /Permission denied \(publickey,password\)/);
  t.is(b.daemon.process.exitCode, null, 'the daemon is still running');

  const opened = await open(b);
  const result = await join(a, b, opened.fingerprint, opened.code);
  t.is(result.code, 0, `a pairing after the rejected client works: ${result.stderr}`);
});

test.serial('unpair clears both nodes', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);

  const result = await cdrctlWithInput(a.node, ['unpair']);
  t.is(result.code, 0, result.stderr);
  t.is(peerFile(a.node), null);
  t.is(peerFile(b.node), null);
  t.is((await pairStatus(a)).replicationState, 'unpaired');
  t.is((await pairStatus(b)).replicationState, 'unpaired');
});

test.serial('unpair from the window node', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);

  const result = await cdrctlWithInput(b.node, ['unpair']);
  t.is(result.code, 0, result.stderr);
  t.is(peerFile(a.node), null);
  t.is(peerFile(b.node), null);
});

test.serial('unpair without a peer fails', async (t) => {
  const result = await cdrctlWithInput(a.node, ['unpair']);
  t.is(result.code, 1);
  t.is(errorCode(result), 'ERR_PAIR_NOT_PAIRED');
});

test.serial('replacement node pairs with survivor', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);
  const survivorBefore = await pairStatus(b);

  // A fresh node with new state plays the failed node after it was rebuilt.
  const fresh = await startPairingNode();
  extra.push(fresh);
  const again = await open(b);
  const result = await join(fresh, b, again.fingerprint, again.code);
  t.is(result.code, 0, result.stderr);

  const survivor = await pairStatus(b);
  const replacement = await pairStatus(fresh);
  t.not(survivor.peer?.nodeId, survivorBefore.peer?.nodeId);
  t.is(survivor.peer?.nodeId, replacement.nodeId);
  t.is(survivor.peer?.sshHostKeyFingerprint, fresh.daemon.fingerprint);
  t.is(replacement.peer?.nodeId, survivor.nodeId);

  // The replaced node's key is no longer pinned on the survivor, so it cannot unpair it.
  const stale = await cdrctlWithInput(a.node, ['unpair']);
  t.is(errorCode(stale), 'ERR_PAIR_AUTH_REJECTED', stale.stderr);
  t.is((await pairStatus(b)).peer?.nodeId, replacement.nodeId);
  t.not(peerFile(a.node), null, 'the rejected unpair left the stale node as it was');

  await cdrctlWithInput(fresh.node, ['unpair', '--local-only']);
});

test.serial('interactive join confirms and asks code', async (t) => {
  const opened = await open(b);
  const result = await cdrctlWithInput(a.node, ['pair', 'join', `127.0.0.1:${b.daemon.port}`], `yes\n${opened.code}\n`);

  t.is(result.code, 0, result.stderr);
  t.true(result.stderr.includes(`has SSH host key\n  ${opened.fingerprint}\n`));
  t.regex(result.stderr, /Pairing code: $/);
  t.is((await pairStatus(a)).peer?.sshHostKeyFingerprint, opened.fingerprint);
});

test.serial('interactive join declined changes nothing', async (t) => {
  const opened = await open(b);
  for (const answer of ['no\n', 'y\n', '']) {
    const result = await cdrctlWithInput(a.node, ['pair', 'join', `127.0.0.1:${b.daemon.port}`], answer);
    t.is(errorCode(result), 'ERR_PAIR_CANCELLED', JSON.stringify(answer));
  }
  t.is(peerFile(a.node), null);
  t.is(peerFile(b.node), null);
  const window = (await pairStatus(b)).window!;
  t.is(window.state, 'open');
  t.is(window.attempts, 0, 'declining never sent a code');
  t.truthy(opened.code);
});

test.serial('host key survives a daemon restart', async (t) => {
  const before = b.daemon.fingerprint;
  await b.daemon.stop();
  b.daemon = await startPairingDaemon(b.node);
  t.is(b.daemon.fingerprint, before);
});

/** Waits up to 5 s for a log line of `node`'s pairing daemon that matches `predicate`. */
async function waitForLine(node: PairingNode, predicate: (line: string) => boolean): Promise<boolean> {
  for (let waited = 0; waited < 5000; waited += 50) {
    if (node.daemon.output.some(predicate)) return true;
    await sleep(50);
  }
  return false;
}

/** Connects a raw ssh2 client to `node`'s pairing port with its host key pinned; resolves on ready or error. */
function rawClient(node: PairingNode, username: string, methods: ssh2.AnyAuthMethod[]): Promise<{ client: ssh2.Client; error?: Error & { level?: string } }> {
  return new Promise((resolveConnect) => {
    const client = new ssh2.Client();
    client.on('error', (error: Error & { level?: string }) => resolveConnect({ client, error }));
    client.on('ready', () => resolveConnect({ client }));
    client.connect({
      host: '127.0.0.1',
      port: node.daemon.port,
      readyTimeout: 5000,
      hostVerifier: (key: Buffer) => fingerprintOf(key) === node.daemon.fingerprint,
      username,
      authHandler: methods,
    });
  });
}

test.serial('ssh2 client with keyboard-interactive only rejected', async (t) => {
  const { client, error } = await rawClient(b, 'cdr-pair', [
      {
        type: 'keyboard-interactive',
        username: 'cdr-pair',
        prompt: (_name, _instructions, _lang, _prompts, finish) => finish(['ABCD-EFGH']),
      },
    ]);
  client.end();

  t.is(error?.level, 'client-authentication');
  t.true(
    await waitForLine(b, (line) => line.includes('"method":"keyboard-interactive"') && line.includes('rejected authentication method')),
    'the daemon logged the rejected method',
  );
  t.is(b.daemon.process.exitCode, null);
  t.is((await pairStatus(b)).window?.state, 'closed', 'the daemon still answers');
});

test.serial('unpair user with unpinned key rejected', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);

  const stranger = ssh2.utils.generateKeyPairSync('ed25519');
  const { client, error } = await rawClient(b, 'cdr-unpair', [{ type: 'publickey', username: 'cdr-unpair', key: stranger.private }]);
  client.end();

  t.is(error?.level, 'client-authentication');
  t.is((await pairStatus(b)).peer?.nodeId, (await pairStatus(a)).nodeId, 'B is still paired with A');
});

test.serial('shell and exec requests rejected', async (t) => {
  await open(b);
  const key = ssh2.utils.generateKeyPairSync('ed25519');
  const { client, error } = await rawClient(b, 'cdr-pair', [
      { type: 'publickey', username: 'cdr-pair', key: key.private },
      { type: 'password', username: 'cdr-pair', password: 'ZZZZ-ZZZZ' },
    ]);
  t.is(error, undefined);

  const execError = await new Promise<Error | undefined>((resolveExec) => client.exec('id', (failure) => resolveExec(failure)));
  const shellError = await new Promise<Error | undefined>((resolveShell) => client.shell((failure) => resolveShell(failure)));
  const sftpError = await new Promise<Error | undefined>((resolveSftp) => client.sftp((failure) => resolveSftp(failure)));
  client.end();

  t.truthy(execError, 'exec');
  t.truthy(shellError, 'shell');
  t.truthy(sftpError, 'sftp');
  t.is(b.daemon.process.exitCode, null);
  t.is((await pairStatus(b)).window?.attempts, 1, 'the wrong code counted as one attempt');
  t.is(peerFile(b.node), null);
});

test.serial('unpair with peer unreachable changes nothing', async (t) => {
  const opened = await open(b);
  t.is((await join(a, b, opened.fingerprint, opened.code)).code, 0);
  const beforeA = await peerState(a);
  const beforeB = await peerState(b);

  await b.daemon.stop();
  try {
    const result = await cdrctlWithInput(a.node, ['unpair']);
    t.is(errorCode(result), 'ERR_PAIR_UNREACHABLE', result.stderr);
    t.deepEqual(await peerState(a), beforeA);
  } finally {
    b.daemon = await startPairingDaemon(b.node);
  }
  t.deepEqual(await peerState(b), beforeB);
});

test.serial('peer rejecting the identity restores the joiner', async (t) => {
  // A repository whose replication certificate was issued to another node id has an identity that no
  // peer accepts.
  const invalid = await startPairingNode();
  await invalid.daemon.stop();
  await invalid.node.stop();
  const foreign = await createSelfSignedCertificate('node-0000abcd', 1);
  writeFileSync(joinPath(invalid.node.dir, 'tls', 'replication.pem'), foreign.certificatePem);
  writeFileSync(joinPath(invalid.node.dir, 'tls', 'replication.key'), foreign.keyPem);
  invalid.node = await restartNode(invalid.node);
  invalid.daemon = await startPairingDaemon(invalid.node);
  extra.push(invalid);
  const opened = await open(b);

  const result = await join(invalid, b, opened.fingerprint, opened.code);

  t.is(errorCode(result), 'ERR_PEER_INVALID', result.stderr);
  t.regex(result.stderr, /issued to "node-0000abcd"/);
  t.is(peerFile(invalid.node), null, 'the joining node put back its previous state');
  t.is((await pairStatus(invalid)).replicationState, 'unpaired');
  t.is(peerFile(b.node), null);
  t.is((await pairStatus(b)).window?.state, 'open', 'the window stays open for another try');
});

test.serial('join input checked before connecting', async (t) => {
  // No daemon runs under this configuration, so only a check before connecting can report these.
  const dir = mkdtempSync(joinPath(tmpdir(), 'imp-cdr-cli-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = joinPath(dir, 'cdr.yaml');
  writeFileSync(configPath, 'paths:\n  state: .\n  run: run\n');
  const cdrctl = (args: string[]) => runTool(process.execPath, [CDRCTL_MAIN, '--config', configPath, ...args]);

  const cases = [
    { args: ['pair', 'join', '127.0.0.1:65536', '--code', 'X'], exit: 2, code: 'ERR_CLI_USAGE' },
    { args: ['pair', 'join', '127.0.0.1', '--fingerprint', 'nope', '--code', 'X'], exit: 1, code: 'ERR_PAIR_FINGERPRINT_INVALID' },
    { args: ['pair', 'open', '--seconds', '3601'], exit: 2, code: 'ERR_CLI_USAGE' },
    { args: ['pair', 'join', '127.0.0.1', '--code', 'X'], exit: 1, code: 'ERR_PAIR_DAEMON_UNAVAILABLE' },
  ];
  for (const { args, exit, code } of cases) {
    const result = await cdrctl(args);
    t.is(result.code, exit, args.join(' '));
    t.is(errorCode(result), code, args.join(' '));
  }
});

test.serial('non-SSH client closed, daemon serves on', async (t) => {
  // ssh2 (1.17.0, lib/server.js) closes a client whose identification line is not SSH before the
  // daemon's connection handler runs, so the daemon logs nothing for it.
  const { received, closedByServer } = await new Promise<{ received: string; closedByServer: boolean }>((resolveClosed) => {
    const socket = connect(b.daemon.port, '127.0.0.1');
    let data = '';
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      socket.destroy();
    }, 10_000);
    socket.on('data', (chunk: Buffer) => (data += chunk.toString('latin1')));
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      resolveClosed({ received: data, closedByServer: !timedOut });
    });
    socket.write('GET / HTTP/1.0\r\n\r\n');
  });

  t.regex(received, /^SSH-2\.0-imp-cdr-pairing\r\n/);
  t.true(closedByServer);
  t.is(b.daemon.process.exitCode, null);
  const scan = await runTool('ssh-keyscan', ['-T', '5', '-t', 'ed25519', '-p', String(b.daemon.port), '127.0.0.1']);
  t.is(scan.code, 0, 'the daemon still answers ssh-keyscan');
});
