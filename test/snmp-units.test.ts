/**
 * Encodings, notification decisions, settings checks and backoff of the SNMP service, without network.
 */

import test from 'ava';

import { isCdrError } from '../services/common/errors.js';
import { parseConfig } from '../services/common/config.js';
import { reconnectDelayMs } from '../services/snmp/agentx-subagent.js';
import { COUNTER64_MAX, encodeCounter64Ber, toCounter64 } from '../services/snmp/counter64.js';
import { DATE_AND_TIME_NEVER, encodeDateAndTime } from '../services/snmp/date-and-time.js';
import { feedRow, feedState, type FeedStateName } from '../services/snmp/feed-state.js';
import { compareVersions, NotificationDetector } from '../services/snmp/notifications.js';
import { resolveSnmpSettings } from '../services/snmp/settings.js';
import { EMPTY_SNAPSHOT, type RepositorySnapshot } from '../services/snmp/snapshot.js';

test('counter64 ber encoding table', (t) => {
  const cases: [bigint, string][] = [
    [0n, '00'],
    [1n, '01'],
    [127n, '7f'],
    [128n, '0080'],
    [255n, '00ff'],
    [256n, '0100'],
    [2n ** 32n, '0100000000'],
    [2n ** 63n - 1n, '7fffffffffffffff'],
    [2n ** 63n, '008000000000000000'],
    [COUNTER64_MAX - 1n, '00fffffffffffffffe'],
    [COUNTER64_MAX, '00ffffffffffffffff'],
  ];
  for (const [value, hex] of cases) {
    t.is(encodeCounter64Ber(value).toString('hex'), hex, `value ${value}`);
  }
});

test('counter64 clamps out of range', (t) => {
  t.is(toCounter64(COUNTER64_MAX + 1n), COUNTER64_MAX);
  t.is(toCounter64(-1n), 0n);
  t.is(toCounter64(-5), 0n);
  t.is(toCounter64(Number.NaN), 0n);
  t.is(toCounter64(undefined), 0n);
  t.is(toCounter64(12.9), 12n);
  t.is(toCounter64(Number.MAX_SAFE_INTEGER), 9_007_199_254_740_991n);
});

test('dateandtime octets in utc', (t) => {
  t.is(encodeDateAndTime(Date.UTC(2026, 11, 4, 20, 5, 9, 750)).toString('hex'), '07ea0c04140509072b0000');
  t.is(encodeDateAndTime(0), DATE_AND_TIME_NEVER);
  t.is(encodeDateAndTime(-1), DATE_AND_TIME_NEVER);
  t.is(DATE_AND_TIME_NEVER.length, 8);
});

test('version comparison', (t) => {
  t.is(compareVersions('0.10.0', '0.9.1'), 1);
  t.is(compareVersions('0.9.1', '0.10.0'), -1);
  t.is(compareVersions('1.2', '1.2.0'), 0);
  t.is(compareVersions('1.2.3-rc1', '1.2.3'), 0);
});

function snapshot(overrides: Partial<RepositorySnapshot> & { replicationState?: string; lagMs?: number; version?: string; state?: string }): RepositorySnapshot {
  const { replicationState = 'tailing', lagMs = 0, version = '1.0.0', state = 'open', ...rest } = overrides;
  return {
    ...EMPTY_SNAPSHOT,
    reachable: true,
    polledMs: 1,
    lastSuccessMs: 1,
    status: { nodeId: 'node-a', softwareVersion: version, state },
    pair: { replicationState, lagMs, peer: { nodeId: 'node-b' } },
    diskFreeBytes: 10 * 1024 * 1024 * 1024,
    ...rest,
  };
}

test('detector notification sequences', (t) => {
  const thresholds = { replicationLagThresholdMs: 60_000, diskFreeThresholdKiB: 1024 * 1024 };
  const cases: { title: string; steps: Parameters<typeof snapshot>[0][]; expected: string[][] }[] = [
    { title: 'steady tailing', steps: [{}, {}, {}], expected: [[], [], []] },
    {
      title: 'lost then regained',
      steps: [{}, { replicationState: 'disconnected' }, { replicationState: 'connecting' }, { replicationState: 'syncing' }],
      expected: [[], ['impCdrPeerLost'], [], ['impCdrPeerRegained']],
    },
    { title: 'first connection is no regain', steps: [{ replicationState: 'connecting' }, { replicationState: 'syncing' }], expected: [[], []] },
    { title: 'unpairing is no loss', steps: [{}, { replicationState: 'unpaired' }], expected: [[], []] },
    {
      title: 'lag crosses once',
      steps: [{ lagMs: 60_000 }, { lagMs: 60_001 }, { lagMs: 90_000 }, { lagMs: 10 }, { lagMs: 70_000 }],
      expected: [[], ['impCdrReplicationLagHigh'], [], [], ['impCdrReplicationLagHigh']],
    },
    {
      title: 'disk low at start and once',
      steps: [{ diskFreeBytes: 1024 * 1024 * 1024 - 1 }, { diskFreeBytes: 1 }, { diskFreeBytes: 1024 * 1024 * 1024 }, { diskFreeBytes: 0 }],
      expected: [['impCdrDiskSpaceLow'], [], [], ['impCdrDiskSpaceLow']],
    },
    {
      title: 'firmware applied and rolled back',
      steps: [{ version: '0.9.1' }, { version: '0.10.0' }, { version: '0.9.1' }],
      expected: [[], ['impCdrFirmwareApplied'], ['impCdrFirmwareRolledBack']],
    },
    {
      title: 'repository down and up',
      steps: [{}, { reachable: false, replicationState: 'tailing' }, {}],
      expected: [[], ['impCdrNodeStateChanged'], ['impCdrNodeStateChanged']],
    },
    {
      title: 'peer changes while unreachable ignored',
      steps: [{}, { reachable: false }, { replicationState: 'disconnected' }],
      expected: [[], ['impCdrNodeStateChanged'], ['impCdrNodeStateChanged']],
    },
  ];

  for (const { title, steps, expected } of cases) {
    const detector = new NotificationDetector(thresholds);
    const seen = steps.map((step) => detector.next(snapshot(step)).map((notification) => notification.name));
    t.deepEqual(seen, expected, title);
  }
});

const HOUR_MS = 3_600_000;
const AT_MS = Date.UTC(2026, 11, 4, 21, 0, 0);

/** Builds a feed with refresh 3600 s whose last refresh started and succeeded `ageMs` before AT_MS. */
function feedInfo(overrides: { id?: string; ageMs?: number; refreshSeconds?: number; lastAttemptMs?: number; lastSuccessMs?: number; lastErrorCode?: string; refreshGraceMs?: number }) {
  const { id = 'drop', ageMs = 0, refreshSeconds = 3600, lastErrorCode = '', refreshGraceMs = 0 } = overrides;
  const lastSuccessMs = overrides.lastSuccessMs ?? AT_MS - ageMs;
  return {
    definition: { id, refreshSeconds },
    entries: 1000,
    lastAttemptMs: overrides.lastAttemptMs ?? lastSuccessMs,
    lastSuccessMs,
    lastErrorCode,
    refreshGraceMs,
  };
}

test('feed state rule table', (t) => {
  const cases: { title: string; feed: Parameters<typeof feedInfo>[0]; expected: FeedStateName }[] = [
    { title: 'just refreshed', feed: {}, expected: 'ok' },
    { title: 'age exactly the interval', feed: { ageMs: HOUR_MS }, expected: 'ok' },
    { title: 'one ms short of a second beyond', feed: { ageMs: HOUR_MS + 999 }, expected: 'ok' },
    { title: 'one second beyond the interval', feed: { ageMs: HOUR_MS + 1000 }, expected: 'stale' },
    { title: 'refresh running, started on time', feed: { ageMs: HOUR_MS + 20_000, lastAttemptMs: AT_MS - 20_000 }, expected: 'ok' },
    { title: 'refresh running, started late', feed: { ageMs: 2 * HOUR_MS, lastAttemptMs: AT_MS - 5000 }, expected: 'stale' },
    { title: 'other node, grace exactly', feed: { ageMs: HOUR_MS + 360_999, refreshGraceMs: 360_000 }, expected: 'ok' },
    { title: 'other node, second past grace', feed: { ageMs: HOUR_MS + 361_000, refreshGraceMs: 360_000 }, expected: 'stale' },
    { title: 'grace rounded up to seconds', feed: { ageMs: HOUR_MS + 1000, refreshGraceMs: 1 }, expected: 'ok' },
    { title: 'last refresh failed', feed: { lastErrorCode: 'ERR_FEED_FETCH' }, expected: 'failed' },
    { title: 'failed, retry running', feed: { lastErrorCode: 'ERR_FEED_FETCH', lastAttemptMs: AT_MS + 1 }, expected: 'failed' },
    { title: 'never succeeded, failed', feed: { lastSuccessMs: 0, lastAttemptMs: AT_MS - 1000, lastErrorCode: 'ERR_FEED_NOT_FOUND' }, expected: 'failed' },
    { title: 'first refresh running', feed: { lastSuccessMs: 0, lastAttemptMs: AT_MS - 1000 }, expected: 'unknown' },
    { title: 'never attempted', feed: { lastSuccessMs: 0, lastAttemptMs: 0 }, expected: 'unknown' },
    { title: 'manual refresh, a week old', feed: { refreshSeconds: 0, ageMs: 7 * 24 * HOUR_MS }, expected: 'ok' },
    { title: 'manual refresh, failed', feed: { refreshSeconds: 0, lastErrorCode: 'ERR_FEED_FORMAT' }, expected: 'failed' },
  ];
  for (const { title, feed, expected } of cases) {
    t.is(feedState(feedInfo(feed), AT_MS), expected, title);
  }
});

test('feed row age in whole seconds', (t) => {
  t.deepEqual(feedRow(feedInfo({ ageMs: 7_200_999 }), AT_MS), { name: 'drop', state: 'stale', entries: 1000, lastSuccessMs: AT_MS - 7_200_999, ageSeconds: 7200 });
  t.is(feedRow(feedInfo({ lastSuccessMs: 0, lastErrorCode: 'ERR_FEED_FETCH' }), AT_MS).ageSeconds, 0);
  // A last success after the poll (clocks stepped back) is no negative age.
  t.is(feedRow(feedInfo({ ageMs: -5000 }), AT_MS).ageSeconds, 0);
});

test('detector feed stale sequences', (t) => {
  const thresholds = { replicationLagThresholdMs: 60_000, diskFreeThresholdKiB: 0 };
  const ok = feedInfo({});
  const failed = feedInfo({ lastErrorCode: 'ERR_FEED_FETCH' });
  const stale = feedInfo({ ageMs: 2 * HOUR_MS });
  const other = feedInfo({ id: 'edrop', lastErrorCode: 'ERR_FEED_FETCH' });
  const cases: { title: string; steps: Partial<RepositorySnapshot>[]; expected: string[][] }[] = [
    { title: 'ok stays quiet', steps: [{ feeds: [ok] }, { feeds: [ok] }], expected: [[], []] },
    {
      title: 'failed once per crossing',
      steps: [{ feeds: [ok] }, { feeds: [failed] }, { feeds: [failed] }, { feeds: [stale] }, { feeds: [ok] }, { feeds: [stale] }],
      expected: [[], ['drop'], [], [], [], ['drop']],
    },
    { title: 'already failed at start', steps: [{ feeds: [failed] }, { feeds: [failed] }], expected: [['drop'], []] },
    { title: 'two feeds fail together', steps: [{ feeds: [ok] }, { feeds: [failed, other] }], expected: [[], ['drop', 'edrop']] },
    { title: 'removed and added again', steps: [{ feeds: [failed] }, { feeds: [] }, { feeds: [failed] }], expected: [['drop'], [], ['drop']] },
    {
      title: 'not judged while unreachable',
      steps: [{ feeds: [ok] }, { reachable: false, feeds: [failed] }, { feeds: [failed] }],
      expected: [[], [], ['drop']],
    },
  ];

  for (const { title, steps, expected } of cases) {
    const detector = new NotificationDetector(thresholds);
    const seen = steps.map((step) =>
      detector
        .next(snapshot({ lastSuccessMs: AT_MS, polledMs: AT_MS, ...step }))
        .filter((notification) => notification.name === 'impCdrFeedStale')
        .map((notification) => notification.feed),
    );
    t.deepEqual(seen, expected, title);
  }
});

test('firmware notification keeps previous version', (t) => {
  const detector = new NotificationDetector({ replicationLagThresholdMs: 1, diskFreeThresholdKiB: 0 });
  detector.next(snapshot({ version: '1.0.0' }));
  detector.next(snapshot({ version: '1.1.0' }));
  t.is(detector.previousSoftwareVersion, '1.0.0');
});

test('reconnect delay doubles to maximum', (t) => {
  t.is(reconnectDelayMs(0, 1000, 60_000), 1000);
  t.is(reconnectDelayMs(1, 1000, 60_000), 2000);
  t.is(reconnectDelayMs(5, 1000, 60_000), 32_000);
  t.is(reconnectDelayMs(6, 1000, 60_000), 60_000);
  t.is(reconnectDelayMs(1000, 1000, 60_000), 60_000);
});

const USER = { name: 'noc', authPassphrase: '12345678', privPassphrase: '87654321' };

test('settings defaults and merge', (t) => {
  const settings = resolveSnmpSettings({ mode: 'standalone', standalone: { users: [USER] } } as never);
  t.is(settings.enterpriseNumber, 32473);
  t.is(settings.standalone.host, '127.0.0.1');
  t.is(settings.standalone.port, 1161);
  t.deepEqual(settings.standalone.communities, []);
  t.is(settings.standalone.users[0]!.level, 'authPriv');
  t.is(settings.standalone.users[0]!.authProtocol, 'sha256');
  t.is(settings.standalone.users[0]!.privProtocol, 'aes128');
  t.is(settings.agentx.host, '127.0.0.1');
  t.is(settings.agentx.port, 705);

  const agentx = resolveSnmpSettings({ agentx: { port: 7050 } } as never);
  t.is(agentx.agentx.port, 7050);
  t.is(agentx.agentx.host, '127.0.0.1');
  t.is(agentx.agentx.reconnectMinMs, 1000);
});

test('settings rejection table', (t) => {
  const cases: { title: string; snmp: unknown; key: string }[] = [
    { title: 'no user nor community', snmp: { mode: 'standalone' }, key: 'snmp.standalone.users' },
    { title: 'authPriv without privacy passphrase', snmp: { standalone: { users: [{ ...USER, privPassphrase: '' }] } }, key: 'snmp.standalone.users[0].privPassphrase' },
    { title: 'privacy passphrase one short', snmp: { standalone: { users: [{ ...USER, privPassphrase: '1234567' }] } }, key: 'snmp.standalone.users[0].privPassphrase' },
    { title: 'duplicate user', snmp: { standalone: { users: [USER, USER] } }, key: 'snmp.standalone.users[1].name' },
    { title: 'trap target unknown user', snmp: { standalone: { users: [USER], engineId: '8000000001', trapTargets: [{ host: '127.0.0.1', user: 'other' }] } }, key: 'snmp.standalone.trapTargets[0].user' },
    { title: 'v3 trap without engine id', snmp: { standalone: { users: [USER], trapTargets: [{ host: '127.0.0.1', user: 'noc' }] } }, key: 'snmp.standalone.engineId' },
    { title: 'trap target without credentials', snmp: { standalone: { trapTargets: [{ host: '127.0.0.1' }] } }, key: 'snmp.standalone.trapTargets[0]' },
    { title: 'backoff minimum above maximum', snmp: { agentx: { reconnectMinMs: 2000, reconnectMaxMs: 1999 } }, key: 'snmp.agentx.reconnectMinMs' },
  ];
  for (const { title, snmp, key } of cases) {
    const error = t.throws(() => resolveSnmpSettings(snmp as never), undefined, title);
    t.true(isCdrError(error, 'ERR_SNMP_CONFIG_INVALID'), title);
    t.is((error as unknown as { details: { key: string } }).details.key, key, title);
  }

  t.notThrows(() => resolveSnmpSettings({ standalone: { users: [{ ...USER, privPassphrase: '12345678' }] } } as never));
  t.notThrows(() => resolveSnmpSettings({ agentx: { reconnectMinMs: 2000, reconnectMaxMs: 2000 } } as never));
});

test('config schema rejection table', (t) => {
  const cases: { title: string; yaml: string; code: string }[] = [
    { title: 'unknown mode', yaml: 'snmp:\n  mode: proxy\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'unknown key', yaml: 'snmp:\n  comunity: public\n', code: 'ERR_CONFIG_UNKNOWN_KEY' },
    { title: 'enterprise zero', yaml: 'snmp:\n  enterpriseNumber: 0\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'enterprise above 2^32-1', yaml: 'snmp:\n  enterpriseNumber: 4294967296\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'poll interval below 100', yaml: 'snmp:\n  pollIntervalMs: 99\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'auth passphrase of 7', yaml: 'snmp:\n  standalone:\n    users:\n      - name: noc\n        authPassphrase: "1234567"\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'md5 authentication', yaml: 'snmp:\n  standalone:\n    users:\n      - name: noc\n        authProtocol: md5\n        authPassphrase: "12345678"\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'des privacy', yaml: 'snmp:\n  standalone:\n    users:\n      - name: noc\n        privProtocol: des\n        authPassphrase: "12345678"\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'engine id of 4 octets', yaml: 'snmp:\n  standalone:\n    engineId: "80000001"\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'engine id of 33 octets', yaml: `snmp:\n  standalone:\n    engineId: "${'ab'.repeat(33)}"\n`, code: 'ERR_CONFIG_INVALID' },
    { title: 'agentx port 0', yaml: 'snmp:\n  agentx:\n    port: 0\n', code: 'ERR_CONFIG_INVALID' },
    { title: 'agentx port 65536', yaml: 'snmp:\n  agentx:\n    port: 65536\n', code: 'ERR_CONFIG_INVALID' },
  ];
  for (const { title, yaml, code } of cases) {
    const error = t.throws(() => parseConfig(yaml, '/tmp/cdr.yaml'), undefined, title);
    t.is((error as unknown as { code: string }).code, code, title);
  }

  t.notThrows(() => parseConfig('snmp:\n  enterpriseNumber: 4294967295\n  pollIntervalMs: 100\n', '/tmp/cdr.yaml'));
  t.notThrows(() => parseConfig(`snmp:\n  standalone:\n    engineId: "${'ab'.repeat(5)}"\n`, '/tmp/cdr.yaml'));
  t.notThrows(() => parseConfig(`snmp:\n  standalone:\n    engineId: "${'ab'.repeat(32)}"\n`, '/tmp/cdr.yaml'));
  t.notThrows(() => parseConfig('snmp:\n  agentx:\n    port: 65535\n', '/tmp/cdr.yaml'));
});
