/**
 * sd_notify: the test binds its own AF_UNIX datagram socket, passes it as NOTIFY_SOCKET to a real
 * repository process (or to an SdNotifier in this process) and reads the datagrams systemd would get.
 */

import { unlinkSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';

import test from 'ava';

import { parseConfig } from '../services/common/config.js';
import { isCdrError } from '../services/common/errors.js';
import { createLogger } from '../services/common/logger.js';
import { SdNotifier } from '../services/common/sd-notify.js';
import { removeNode, startNode } from './helpers/node.js';
import { NotifyListener } from './helpers/notify.js';

const silentLog = createLogger('test', 'silent');


const isWatchdog = (datagram: string) => datagram.split('\n').includes('WATCHDOG=1');

test('repository sends ready, pings, stopping', async (t) => {
  const listener = new NotifyListener();
  const node = await startNode({ env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' } });
  t.teardown(() => {
    listener.close();
    removeNode(node);
  });

  const ready = await listener.waitFor((datagram) => datagram.startsWith('READY=1\n'));
  t.is(listener.datagrams[ready], `READY=1\nSTATUS=serving IMPs on 127.0.0.1:${node.port}; 0 clients, 0 observations, 0 lookups`);

  const beforeReady = listener.datagrams.slice(0, ready);
  t.true(beforeReady.includes('STATUS=opening index\nEXTEND_TIMEOUT_USEC=60000000'));
  t.true(beforeReady.includes('STATUS=loading reputation policy\nEXTEND_TIMEOUT_USEC=60000000'));
  t.true(beforeReady.includes('STATUS=loading TLS material\nEXTEND_TIMEOUT_USEC=60000000'));
  t.true(beforeReady.includes('STATUS=opening listeners'));
  t.is(beforeReady.filter(isWatchdog).length, 0);

  const firstPing = await listener.waitFor(isWatchdog, 5000, ready);
  t.is(listener.datagrams[firstPing], `WATCHDOG=1\nSTATUS=serving IMPs on 127.0.0.1:${node.port}; 0 clients, 0 observations, 0 lookups`);
  await listener.waitFor(isWatchdog, 5000, firstPing + 1);

  const code = await node.stop();
  t.is(code, 0);
  t.true(listener.datagrams.includes('STOPPING=1\nSTATUS=stopping on SIGTERM'));
});

test('deleted control socket stops pings', async (t) => {
  const listener = new NotifyListener();
  const node = await startNode({ env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' } });
  t.teardown(async () => {
    await node.kill();
    listener.close();
    removeNode(node);
  });

  const ready = await listener.waitFor((datagram) => datagram.startsWith('READY=1'));
  await listener.waitFor(isWatchdog, 5000, ready);

  unlinkSync(node.socketPath);
  const unhealthy = await listener.waitFor((datagram) => datagram.startsWith('STATUS=unhealthy:'), 5000, ready);
  t.is(listener.datagrams[unhealthy], `STATUS=unhealthy: control socket ${node.socketPath} is missing: ENOENT`);

  // Four watchdog intervals pass without a ping while the check keeps failing.
  await sleep(800);
  t.is(listener.countSince(unhealthy, isWatchdog), 0);
  t.true(listener.countSince(unhealthy, (datagram) => datagram.startsWith('STATUS=unhealthy: control socket')) >= 2);
  t.true(node.output.some((line) => line.includes('"health check failed; watchdog pings stop until it passes"')));
});

test('wedged health check stops pings', async (t) => {
  const listener = new NotifyListener();
  const notifier = SdNotifier.fromEnvironment(silentLog, {
    env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' },
    healthCheckTimeoutMs: 60,
  });
  t.teardown(() => {
    notifier.close();
    listener.close();
  });

  let release: ((value: undefined) => void) | undefined;
  let wedged = false;
  const check = () => (wedged ? new Promise<undefined>((resolveCheck) => (release = resolveCheck)) : Promise.resolve(undefined));
  notifier.startWatchdog(check, () => 'serving');

  await listener.waitFor((datagram) => datagram === 'WATCHDOG=1\nSTATUS=serving', 5000);
  wedged = true;
  const timedOut = await listener.waitFor((datagram) => datagram.startsWith('STATUS=unhealthy'), 5000);
  t.is(listener.datagrams[timedOut], 'STATUS=unhealthy: health check did not finish within 60 ms');
  t.false(notifier.healthy);

  const stillRunning = await listener.waitFor((datagram) => datagram.startsWith('STATUS=unhealthy: health check has not finished for'), 5000, timedOut + 1);
  await sleep(400);
  t.is(listener.countSince(timedOut, isWatchdog), 0);
  t.regex(listener.datagrams[stillRunning]!, /^STATUS=unhealthy: health check has not finished for \d+ ms$/);

  wedged = false;
  release!(undefined);
  const resumed = await listener.waitFor(isWatchdog, 5000, stillRunning + 1);
  t.is(listener.datagrams[resumed], 'WATCHDOG=1\nSTATUS=serving');
  t.true(notifier.healthy);
});

test('failing health check withholds pings', async (t) => {
  const listener = new NotifyListener();
  const notifier = SdNotifier.fromEnvironment(silentLog, { env: { NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '100000' } });
  t.teardown(() => {
    notifier.close();
    listener.close();
  });

  notifier.startWatchdog(() => Promise.reject(new Error('disk full')), () => 'serving');
  const failed = await listener.waitFor((datagram) => datagram.startsWith('STATUS='), 5000);
  t.is(listener.datagrams[failed], 'STATUS=unhealthy: health check failed: disk full');
  await sleep(300);
  t.is(listener.countSince(0, isWatchdog), 0);
});

test('long step extends start timeout', async (t) => {
  const listener = new NotifyListener();
  const notifier = SdNotifier.fromEnvironment(silentLog, { env: { NOTIFY_SOCKET: listener.path } });
  t.teardown(() => {
    notifier.close();
    listener.close();
  });

  const result = await notifier.extendWhile('opening index', 1000, async () => {
    await sleep(1400);
    return 42;
  });
  t.is(result, 42);
  await sleep(100);
  t.is(listener.datagrams[0], 'STATUS=opening index\nEXTEND_TIMEOUT_USEC=1000000');
  const renewals = listener.datagrams.slice(1);
  t.true(renewals.length >= 2);
  t.true(renewals.every((datagram) => datagram === 'EXTEND_TIMEOUT_USEC=1000000'));

  // No renewal after the step ended.
  const count = listener.datagrams.length;
  await sleep(700);
  t.is(listener.datagrams.length, count);
});

test('status line stays one assignment', async (t) => {
  const listener = new NotifyListener();
  const notifier = SdNotifier.fromEnvironment(silentLog, { env: { NOTIFY_SOCKET: listener.path } });
  t.teardown(() => {
    notifier.close();
    listener.close();
  });

  notifier.status('line one\nREADY=1\r\nline three');
  notifier.stopping('bye');
  await listener.waitFor((datagram) => datagram.startsWith('STOPPING=1'), 5000);
  t.deepEqual(listener.datagrams, ['STATUS=line one READY=1 line three', 'STOPPING=1\nSTATUS=bye']);
});

test('unset NOTIFY_SOCKET sends nothing', (t) => {
  const notifier = SdNotifier.fromEnvironment(silentLog, { env: { WATCHDOG_USEC: '100000' } });
  t.false(notifier.enabled);
  notifier.ready('serving');
  notifier.status('serving');
  notifier.startWatchdog(() => Promise.resolve(undefined), () => 'serving');
  notifier.stopping('stopping');
  notifier.close();
  t.pass();
});

test('abstract NOTIFY_SOCKET is disabled', (t) => {
  const notifier = SdNotifier.fromEnvironment(silentLog, { env: { NOTIFY_SOCKET: '@/org/freedesktop/systemd1/notify' } });
  t.false(notifier.enabled);
});

test('WATCHDOG_USEC bounds and WATCHDOG_PID', (t) => {
  const cases: Array<[Record<string, string>, number | undefined]> = [
    [{ WATCHDOG_USEC: '1' }, 1],
    [{ WATCHDOG_USEC: '86400000000' }, 86_400_000_000],
    [{ WATCHDOG_USEC: '86400000001' }, undefined],
    [{ WATCHDOG_USEC: '0' }, undefined],
    [{ WATCHDOG_USEC: '-5' }, undefined],
    [{ WATCHDOG_USEC: '1.5' }, undefined],
    [{ WATCHDOG_USEC: 'abc' }, undefined],
    [{ WATCHDOG_USEC: '' }, undefined],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }, 30_000_000],
    [{ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid + 1) }, undefined],
  ];
  for (const [env, expected] of cases) {
    const notifier = SdNotifier.fromEnvironment(silentLog, { env: { NOTIFY_SOCKET: '/nonexistent/notify', ...env } });
    t.is(notifier.watchdogUsec, expected, JSON.stringify(env));
  }
});

test('supervision config limits', (t) => {
  const accepted: Array<[string, number]> = [
    ['extendTimeoutMs', 1000],
    ['extendTimeoutMs', 3_600_000],
    ['healthCheckTimeoutMs', 100],
    ['healthCheckTimeoutMs', 600_000],
  ];
  for (const [key, value] of accepted) {
    const config = parseConfig(`supervision:\n  ${key}: ${value}\n`, '/tmp/cdr.yaml');
    t.is(config.supervision[key as 'extendTimeoutMs'], value);
  }

  const rejected: Array<[string, string, string]> = [
    ['extendTimeoutMs', '999', 'ERR_CONFIG_INVALID'],
    ['extendTimeoutMs', '3600001', 'ERR_CONFIG_INVALID'],
    ['healthCheckTimeoutMs', '99', 'ERR_CONFIG_INVALID'],
    ['healthCheckTimeoutMs', '600001', 'ERR_CONFIG_INVALID'],
    ['healthCheckTimeoutMs', 'soon', 'ERR_CONFIG_INVALID'],
    ['watchdogSec', '30', 'ERR_CONFIG_UNKNOWN_KEY'],
  ];
  for (const [key, value, code] of rejected) {
    const error = t.throws(() => parseConfig(`supervision:\n  ${key}: ${value}\n`, '/tmp/cdr.yaml'));
    t.true(isCdrError(error, code as 'ERR_CONFIG_INVALID'), `${key}: ${value} gave ${(error as { code?: string }).code}`);
  }
});

test('pairing and SNMP daemons notify systemd', async (t) => {
  const { spawn } = await import('node:child_process');
  const { PAIRING_MAIN } = await import('./helpers/pairing.js');
  const { SNMP_MAIN, freeUdpPort, NOC_USER, TEST_ENGINE_ID } = await import('./helpers/snmp.js');

  const snmpPort = await freeUdpPort();
  const node = await startNode({
    extraConfig: [
      'pairing:',
      '  port: 0',
      'snmp:',
      '  mode: standalone',
      '  standalone:',
      `    port: ${snmpPort}`,
      `    engineId: ${TEST_ENGINE_ID}`,
      '    users:',
      `      - name: ${NOC_USER.name}`,
      `        authPassphrase: ${NOC_USER.authPassphrase}`,
      `        privPassphrase: ${NOC_USER.privPassphrase}`,
    ].join('\n'),
  });
  t.teardown(async () => {
    await node.stop();
    removeNode(node);
  });

  for (const [main, status] of [
    [PAIRING_MAIN, 'waiting for a pairing window'],
    [SNMP_MAIN, 'serving IMP-CDR-MIB (standalone)'],
  ] as const) {
    const listener = new NotifyListener();
    const child = spawn(process.execPath, [main, '--config', node.configPath], {
      stdio: 'ignore',
      env: { ...process.env, NOTIFY_SOCKET: listener.path, WATCHDOG_USEC: '200000' },
    });
    const exited = new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));
    try {
      const ready = await listener.waitFor((datagram) => datagram.startsWith('READY=1'), 20_000);
      t.is(listener.datagrams[ready], `READY=1\nSTATUS=${status}`);
      await listener.waitFor(isWatchdog, 5000, ready);
      child.kill('SIGTERM');
      t.is(await exited, 0, main);
      t.true(listener.datagrams.includes('STOPPING=1\nSTATUS=stopping on SIGTERM'), main);
    } finally {
      child.kill('SIGKILL');
      listener.close();
    }
  }
});
