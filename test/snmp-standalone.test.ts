/**
 * The standalone SNMPv3 agent against a real repository, queried with the Net-SNMP tools and sending
 * traps to a real snmptrapd, all on 127.0.0.1.
 */

import { readFileSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import { kindToWire } from '../modules/protocol/constants.js';
import type { ImpProtocolClient } from '../modules/protocol/client.js';
import { parseConfig } from '../services/common/config.js';
import { createLogger } from '../services/common/logger.js';
import { SnmpService } from '../services/snmp/service.js';
import { resolveSnmpSettings } from '../services/snmp/settings.js';
import type { StatusSource } from '../services/snmp/snapshot.js';
import { cdrctl, connectReady, enroll, removeNode, SHARED_DATA, startNode, type TestNode } from './helpers/node.js';
import {
  dateAndTimeText,
  feedLastSuccessMs,
  freeUdpPort,
  netSnmp,
  NOC_USER,
  removePeer,
  SNMP_MAIN,
  startSnmpAgent,
  startSnmptrapd,
  TEST_ENGINE_ID,
  v3Args,
  type Peer,
  type Snmptrapd,
} from './helpers/snmp.js';

const DISPOSABLE_DOMAINS = join(SHARED_DATA, 'domains', 'disposable-email-domains', 'disposable_email_blocklist.conf');
const SPAMHAUS_DROP = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror', 'drop.txt');
const SPAMHAUS_EDROP = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror', 'edrop.txt');
const ROOT_OID = '1.3.6.1.4.1.32473';
const POLL_INTERVAL_MS = 200;

let node: TestNode;
let agent: Peer;
let trapd: Snmptrapd;
let client: ImpProtocolClient;
let agentPort: number;
let target: string;

function snmpConfig(port: number, trapPort: number): string {
  return [
    'snmp:',
    '  mode: standalone',
    `  pollIntervalMs: ${POLL_INTERVAL_MS}`,
    '  standalone:',
    `    port: ${port}`,
    `    engineId: ${TEST_ENGINE_ID}`,
    '    users:',
    `      - name: ${NOC_USER.name}`,
    `        authPassphrase: ${NOC_USER.authPassphrase}`,
    `        privPassphrase: ${NOC_USER.privPassphrase}`,
    '    trapTargets:',
    '      - host: 127.0.0.1',
    `        port: ${trapPort}`,
    `        user: ${NOC_USER.name}`,
  ].join('\n');
}

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

/** Value part of `snmpget -Oqv` output for one object. */
async function getValue(name: string, extra: string[] = []): Promise<string> {
  const result = await netSnmp('snmpget', [...v3Args(), '-Oqv', ...extra, target, name]);
  if (result.code !== 0) {
    throw new Error(`snmpget ${name} failed: ${result.stderr}`);
  }
  return result.stdout.trim();
}

/** Rows of `cdrctl feeds list` as ID to ENTRIES. */
async function listedFeedEntries(): Promise<Map<string, string>> {
  const result = await cdrctl(node, ['feeds', 'list']);
  if (result.code !== 0) {
    throw new Error(`cdrctl feeds list failed: ${result.stderr}`);
  }
  const rows = result.stdout.trim().split('\n').slice(1).map((line) => line.split('\t'));
  return new Map(rows.map((cells) => [cells[0]!, cells[3]!]));
}

test.before(async () => {
  trapd = await startSnmptrapd();
  agentPort = await freeUdpPort();
  target = `udp:127.0.0.1:${agentPort}`;
  node = await startNode({ extraConfig: snmpConfig(agentPort, trapd.port) });
  agent = await startSnmpAgent(node.configPath, node.dir);

  const bundle = await enroll(node, 'imp-snmp-1');
  client = await connectReady(node, bundle, 'imp-snmp-1');
  const domains = readFileSync(DISPOSABLE_DOMAINS, 'utf8').split('\n').filter((line) => line && !line.startsWith('#')).slice(0, 25);
  await client.request({
    observe: {
      sequence: 1,
      observations: domains.map((key) => ({ object: { kind: kindToWire('domain'), key }, intervalStartMs: Date.now(), counters: { messages: 3, spam: 2 } })),
    },
  });
  await client.request({ lookup: { keys: domains.slice(0, 10).map((key) => ({ kind: kindToWire('domain'), key })) } });
  const added = await cdrctl(node, ['feeds', 'add', 'drop', SPAMHAUS_DROP, 'iplist']);
  if (added.code !== 0) {
    throw new Error(`cdrctl feeds add failed: ${added.stdout}${added.stderr}`);
  }
  // Three poll intervals: the agent has read the status after the traffic above.
  await sleep(POLL_INTERVAL_MS * 3);
});

test.after.always(async () => {
  await client?.close().catch(() => undefined);
  await agent?.stop();
  await node?.stop();
  await trapd?.stop();
  if (node) removeNode(node);
  if (trapd) removePeer(trapd);
});

test.serial('values match cdrctl status', async (t) => {
  const result = await cdrctl(node, ['status', '--json']);
  t.is(result.code, 0, result.stderr);
  const status = JSON.parse(result.stdout) as {
    nodeId: string;
    softwareVersion: string;
    state: string;
    uptimeSeconds: number;
    policyVersion: number;
    objects: Record<string, number>;
    traffic: Record<string, number>;
    clients: { impId: string; clusterId: string; address: string; oosVersion: string; observations: number; lookups: number }[];
  };

  t.is(await getValue('IMP-CDR-MIB::impCdrNodeId.0'), status.nodeId);
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeSoftwareVersion.0'), status.softwareVersion);
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeState.0'), status.state);
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeRole.0'), 'standalone');
  t.is(await getValue('IMP-CDR-MIB::impCdrNodePolicyVersion.0'), String(status.policyVersion));
  t.is(await getValue('IMP-CDR-MIB::impCdrIndexDomainObjects.0'), String(status.objects.domain));
  t.is(status.objects.domain, 25);
  t.is(await getValue('IMP-CDR-MIB::impCdrIndexIpObjects.0'), String(status.objects.ip));
  t.is(await getValue('IMP-CDR-MIB::impCdrTrafficObservations.0'), String(status.traffic.observations));
  t.is(status.traffic.observations, 25);
  t.is(await getValue('IMP-CDR-MIB::impCdrTrafficObserveBatches.0'), String(status.traffic.observeBatches));
  t.is(await getValue('IMP-CDR-MIB::impCdrTrafficLookups.0'), String(status.traffic.lookups));
  t.is(await getValue('IMP-CDR-MIB::impCdrTrafficLookupKeys.0'), String(status.traffic.lookupKeys));
  t.is(status.traffic.lookupKeys, 10);
  t.is(await getValue('IMP-CDR-MIB::impCdrTrafficErrors.0'), String(status.traffic.errors));
  t.is(await getValue('IMP-CDR-MIB::impCdrClientCount.0'), '1');
  t.is(await getValue('IMP-CDR-MIB::impCdrPeerState.0'), 'unpaired');

  // Uptime moves between the two reads; the agent's value is at most one poll interval plus the time
  // between the two commands behind cdrctl's.
  const ticks = Number(await getValue('IMP-CDR-MIB::impCdrNodeUptime.0', ['-Ot']));
  t.true(Math.abs(ticks / 100 - status.uptimeSeconds) <= 2, `uptime ${ticks / 100} s against ${status.uptimeSeconds} s`);

  const [row] = status.clients;
  t.is(await getValue('IMP-CDR-MIB::impCdrClientImpId.1'), `"${row!.impId}"`.replaceAll('"', ''));
  t.is(await getValue('IMP-CDR-MIB::impCdrClientClusterId.1'), row!.clusterId);
  t.is(await getValue('IMP-CDR-MIB::impCdrClientAddress.1'), row!.address);
  t.is(await getValue('IMP-CDR-MIB::impCdrClientOosVersion.1'), row!.oosVersion);
  t.is(await getValue('IMP-CDR-MIB::impCdrClientObservations.1'), String(row!.observations));
  t.is(await getValue('IMP-CDR-MIB::impCdrClientLookups.1'), String(row!.lookups));
});

test.serial('snmptable prints clients table', async (t) => {
  const result = await netSnmp('snmptable', [...v3Args(), '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrClientTable']);
  t.is(result.code, 0, result.stderr);
  const rows = result.stdout.trim().split('\n').filter((line) => line.length > 0);
  t.is(rows.length, 1, result.stdout);
  const cells = rows[0]!.split('|');
  t.is(cells[0], 'imp-snmp-1');
  t.is(cells[1], 'cluster-test');
  t.regex(cells[2]!, /^127\.0\.0\.1:\d+$/);
  t.is(cells[3], 'M300');
  t.is(cells[4], '2.6.1');
  t.is(cells[6], '25');
  // Lookups per connection count keys: one Lookup request of 10 keys.
  t.is(cells[7], '10');
});

test.serial('feed table matches cdrctl feeds', async (t) => {
  const listed = await listedFeedEntries();
  t.deepEqual([...listed.keys()], ['drop']);
  // drop.txt lists one network per line, 989 lines.
  t.is(listed.get('drop'), '989');
  const lastSuccessMs = await feedLastSuccessMs(node, 'drop');

  const result = await netSnmp('snmptable', [...v3Args(), '-OU', '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrFeedTable']);
  t.is(result.code, 0, result.stderr);
  const rows = result.stdout.trim().split('\n');
  t.is(rows.length, 1, result.stdout);
  const [name, state, entries, lastSuccess, age] = rows[0]!.split('|');
  t.is(name, 'drop');
  t.is(state, 'ok');
  t.is(entries, '989');
  t.is(lastSuccess, dateAndTimeText(lastSuccessMs));
  t.true(Number(age) >= 0 && Number(age) <= Math.ceil((Date.now() - lastSuccessMs) / 1000), `age ${age} s`);

  t.is(await getValue('IMP-CDR-MIB::impCdrFeedCount.0'), String(listed.size));
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedName.1'), 'drop');
});

test.serial('failed feed sends impCdrFeedStale', async (t) => {
  // The feed reads edrop.txt in place through a link that the test can remove.
  const link = join(node.dir, 'edrop-link.txt');
  symlinkSync(SPAMHAUS_EDROP, link);
  const added = await cdrctl(node, ['feeds', 'add', 'edrop', link, 'iplist']);
  t.is(added.code, 0, added.stdout + added.stderr);
  const listed = await listedFeedEntries();
  t.is(listed.get('edrop'), '322');
  const lastSuccessMs = await feedLastSuccessMs(node, 'edrop');
  await sleep(POLL_INTERVAL_MS * 3);
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedCount.0'), '2');
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedState.2'), 'ok');
  t.false(trapd.output.some((line) => line.includes('impCdrFeedStale')));

  unlinkSync(link);
  const refreshed = await cdrctl(node, ['feeds', 'refresh', 'edrop']);
  t.is(refreshed.code, 1);
  t.regex(refreshed.stdout, /ERR_FEED_FETCH: cannot open .*edrop-link\.txt: ENOENT/);

  const trap = await trapd.waitFor('impCdrFeedStale');
  t.regex(trap, /impCdrFeedName\.2 = STRING: edrop/);
  t.regex(trap, /impCdrFeedState\.2 = INTEGER: failed\(4\)/);
  t.true(trap.includes(`impCdrFeedLastSuccess.2 = STRING: ${dateAndTimeText(lastSuccessMs)}`), trap);
  const age = Number(/impCdrFeedAge\.2 = Gauge32: (\d+)/.exec(trap)?.[1]);
  t.true(age >= 0 && age <= Math.ceil((Date.now() - lastSuccessMs) / 1000), `age ${age} s`);

  // The version in force stays, and the state does not send the notification again.
  await sleep(POLL_INTERVAL_MS * 3);
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedState.2'), 'failed');
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedEntries.2'), '322');
  t.is(await getValue('IMP-CDR-MIB::impCdrFeedState.1'), 'ok');
  t.is(trapd.output.filter((line) => line.includes('impCdrFeedStale')).length, 1);
});

test.serial('missing oids return noSuch values', async (t) => {
  const instance = await netSnmp('snmpget', [...v3Args(), target, 'IMP-CDR-MIB::impCdrNodeId.1']);
  t.is(instance.code, 0, instance.stderr);
  t.regex(instance.stdout, /No Such Instance currently exists at this OID/);

  const object = await netSnmp('snmpget', [...v3Args(), target, `${ROOT_OID}.1.99.1.0`]);
  t.is(object.code, 0, object.stderr);
  t.regex(object.stdout, /No Such Object available on this agent at this OID/);

  const row = await netSnmp('snmpget', [...v3Args(), target, 'IMP-CDR-MIB::impCdrClientImpId.2']);
  t.regex(row.stdout, /No Such Instance currently exists at this OID/);
});

test.serial('walk without start oid', async (t) => {
  const result = await netSnmp('snmpwalk', [...v3Args(), '-On', target]);
  t.is(result.code, 0, result.stderr);
  const oids = result.stdout
    .trim()
    .split('\n')
    .map((line) => line.split(' = ')[0]);
  t.deepEqual(oids, ['.1.3.6.1.2.1.1.1.0', '.1.3.6.1.2.1.1.2.0', '.1.3.6.1.2.1.1.3.0', '.1.3.6.1.2.1.1.5.0']);
  t.regex(result.stdout, /\.1\.3\.6\.1\.2\.1\.1\.2\.0 = OID: \.1\.3\.6\.1\.4\.1\.32473\n/);
});

test.serial('getnext outside the subtree', async (t) => {
  const before = await netSnmp('snmpgetnext', [...v3Args(), '-On', target, '1.3.6.1.4.1']);
  t.is(before.code, 0, before.stderr);
  t.regex(before.stdout, /^\.1\.3\.6\.1\.4\.1\.32473\.1\.1\.1\.0 = STRING: /);

  const after = await netSnmp('snmpgetnext', [...v3Args(), '-On', target, '1.3.6.1.4.1.32474']);
  t.is(after.code, 0, after.stderr);
  t.regex(after.stdout, /No more variables left in this MIB View/);

  const between = await netSnmp('snmpgetnext', [...v3Args(), '-On', target, '1.3.6.1.2.1.1.5.0']);
  t.regex(between.stdout, /^\.1\.3\.6\.1\.4\.1\.32473\.1\.1\.1\.0 = STRING: /);
});

test.serial('bulkwalk returns whole subtree', async (t) => {
  const result = await netSnmp('snmpbulkwalk', [...v3Args(), '-Cr50', '-On', target, ROOT_OID]);
  t.is(result.code, 0, result.stderr);
  const lines = result.stdout.trim().split('\n');
  // The subtree is the end of this agent's MIB, so the last response pads the remaining repetitions
  // with endOfMibView (RFC 3416 section 4.2.3), which snmpbulkwalk prints.
  const values = lines.filter((line) => !line.includes('No more variables left in this MIB View'));
  // 37 scalars, one client row of 8 readable columns and two feed rows of 5.
  t.is(values.length, 37 + 8 + 2 * 5, result.stdout);
  t.true(values.every((line) => line.startsWith(`.${ROOT_OID}.1.`)));
  t.is(values.at(-1)!.split(' = ')[0], `.${ROOT_OID}.1.7.3.0`);
});

test.serial('noAuth request rejected', async (t) => {
  const result = await netSnmp('snmpget', ['-v3', '-l', 'noAuthNoPriv', '-u', NOC_USER.name, target, 'IMP-CDR-MIB::impCdrNodeId.0']);
  t.not(result.code, 0);
  t.false(result.stdout.includes('STRING'));
});

test.serial('wrong passphrase rejected', async (t) => {
  const wrongAuth = await netSnmp('snmpget', [...v3Args({ ...NOC_USER, authPassphrase: 'not-the-passphrase' }), target, 'IMP-CDR-MIB::impCdrNodeId.0']);
  t.not(wrongAuth.code, 0);
  t.false(wrongAuth.stdout.includes('STRING'));

  const unknownUser = await netSnmp('snmpget', [...v3Args({ ...NOC_USER, name: 'intruder' }), target, 'IMP-CDR-MIB::impCdrNodeId.0']);
  t.not(unknownUser.code, 0);
  t.false(unknownUser.stdout.includes('STRING'));
});

test.serial('v2c disabled without community', async (t) => {
  const result = await netSnmp('snmpget', ['-v2c', '-c', 'public', target, 'IMP-CDR-MIB::impCdrNodeId.0']);
  t.not(result.code, 0);
  t.regex(result.stderr, /Timeout/);
});

test.serial('set rejected as not writable', async (t) => {
  const result = await netSnmp('snmpset', [...v3Args(), target, 'IMP-CDR-MIB::impCdrNodeId.0', 's', 'other']);
  t.not(result.code, 0);
  t.regex(result.stderr + result.stdout, /notWritable|noAccess|not writable/i);
});

test.serial('repository down reports unreachable', async (t) => {
  const nodeId = await getValue('IMP-CDR-MIB::impCdrNodeId.0');
  await node.stop();
  // A poll may first see the repository in closing(5), which sends its own impCdrNodeStateChanged.
  const trapLine = await trapd.waitFor('impCdrNodeState.0 = INTEGER: unreachable(1)');
  t.regex(trapLine, /impCdrNodeStateChanged/);
  t.regex(trapLine, new RegExp(`impCdrNodeId\\.0 = STRING: ${nodeId}`));

  t.is(await getValue('IMP-CDR-MIB::impCdrNodeState.0'), 'unreachable');
  t.is(await getValue('IMP-CDR-MIB::impCdrPeerState.0'), 'unknown');
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeId.0'), nodeId);
});

/** Status source with fixed counters, used in place of the repository because its counters cannot reach 2^64 in a test. */
function fixedSource(observations: bigint, lookups: bigint): StatusSource {
  return {
    read: async () => ({
      status: {
        nodeId: 'node-counter64',
        softwareVersion: '0.1.0',
        role: 'standalone',
        state: 'open',
        uptimeSeconds: 5,
        objects: {},
        traffic: { observations: observations as unknown as number, lookups: lookups as unknown as number },
        clients: [],
      },
      pair: { replicationState: 'unpaired' },
      feeds: [],
    }),
  };
}

test.serial('counter64 near maximum stays unsigned', async (t) => {
  const port = await freeUdpPort();
  const dir = node.dir;
  const text = ['paths:', '  state: .', '  run: run', snmpConfig(port, trapd.port)].join('\n').replace('  standalone:', '  diskFreeThresholdKiB: 4294967295\n  standalone:');
  writeFileSync(join(dir, 'counter64.yaml'), text);
  const config = parseConfig(text, join(dir, 'counter64.yaml'));
  const service = new SnmpService(config, resolveSnmpSettings(config.snmp), createLogger('snmp-test', 'silent'), {
    source: fixedSource(2n ** 64n - 1n, 2n ** 63n),
  });
  await service.start();
  try {
    const at = `udp:127.0.0.1:${port}`;
    const observations = await netSnmp('snmpget', [...v3Args(), '-Oqv', at, 'IMP-CDR-MIB::impCdrTrafficObservations.0']);
    t.is(observations.stdout.trim(), '18446744073709551615');
    const lookups = await netSnmp('snmpget', [...v3Args(), '-Oqv', at, 'IMP-CDR-MIB::impCdrTrafficLookups.0']);
    t.is(lookups.stdout.trim(), '9223372036854775808');
    const errors = await netSnmp('snmpget', [...v3Args(), '-Oqv', at, 'IMP-CDR-MIB::impCdrTrafficErrors.0']);
    t.is(errors.stdout.trim(), '0');

    // The threshold above any disk's free space makes the first poll send impCdrDiskSpaceLow.
    const trap = await trapd.waitFor('impCdrDiskSpaceLow');
    t.truthy(trap);
    const trapText = trapd.output.slice(trapd.output.findIndex((line) => line.includes('impCdrDiskSpaceLow'))).join('\n');
    t.regex(trapText, /impCdrIndexDiskFreeThreshold\.0 = Gauge32: 4294967295/);
    t.regex(trapText, /impCdrNodeId\.0 = STRING: node-counter64/);
  } finally {
    await service.stop();
  }
});

test.serial('port in use fails start', async (t) => {
  const { createSocket } = await import('node:dgram');
  const holder = createSocket('udp4');
  await new Promise<void>((resolveBound) => holder.bind(0, '127.0.0.1', () => resolveBound()));
  const port = holder.address().port;
  try {
    const text = ['paths:', '  state: .', '  run: run', snmpConfig(port, trapd.port)].join('\n');
    const config = parseConfig(text, join(node.dir, 'busy.yaml'));
    const service = new SnmpService(config, resolveSnmpSettings(config.snmp), createLogger('snmp-test', 'silent'), { source: fixedSource(0n, 0n) });
    const error = await t.throwsAsync(service.start());
    t.is((error as unknown as { code: string }).code, 'ERR_SNMP_AGENT_BIND');
    t.regex(error!.message, new RegExp(`127\\.0\\.0\\.1:${port} \\(EADDRINUSE\\)`));
    await service.stop();
  } finally {
    holder.close();
  }
});

test.serial('agent without users exits 78', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const path = join(node.dir, 'no-users.yaml');
  writeFileSync(path, 'paths:\n  state: .\n  run: run\nsnmp:\n  mode: standalone\n');
  const result = spawnSync(process.execPath, [SNMP_MAIN, '--config', path], { encoding: 'utf8', timeout: 20_000 });
  t.is(result.status, 78);
  t.regex(result.stderr, /snmp\.standalone\.users: the standalone agent has no SNMPv3 user and no v2c community/);
});

/**
 * Status source that plays the given replication states in order, then repeats the last one, so the
 * exact trap contents can be pinned; test/snmp-peer.test.ts covers the same traps with a real pair.
 */
function replicationSource(states: string[]): StatusSource {
  let position = 0;
  return {
    read: async () => {
      const replicationState = states[Math.min(position, states.length - 1)]!;
      position += 1;
      return {
        status: { nodeId: 'node-a', softwareVersion: '0.1.0', role: 'standalone', state: 'open', objects: {}, traffic: {}, clients: [] },
        pair: {
          replicationState,
          lastContactMs: Date.UTC(2026, 11, 4, 20, 0, 0),
          backlog: 42,
          peer: { nodeId: 'node-b', host: '127.0.0.1', replicationPort: 7301 },
        },
        feeds: [],
      };
    },
  };
}

test.serial('peer lost and regained traps', async (t) => {
  const port = await freeUdpPort();
  const text = ['paths:', '  state: .', '  run: run', snmpConfig(port, trapd.port)].join('\n');
  const config = parseConfig(text, join(node.dir, 'peer.yaml'));
  const service = new SnmpService(config, resolveSnmpSettings(config.snmp), createLogger('snmp-test', 'silent'), {
    source: replicationSource(['tailing', 'tailing', 'disconnected', 'connecting', 'syncing']),
  });
  await service.start();
  try {
    const lost = await trapd.waitFor('impCdrPeerLost');
    t.regex(lost, /impCdrPeerNodeId\.0 = STRING: node-b/);
    t.regex(lost, /impCdrPeerAddress\.0 = STRING: 127\.0\.0\.1:7301/);
    t.regex(lost, /impCdrPeerState\.0 = INTEGER: disconnected\(6\)/);
    t.regex(lost, /impCdrPeerLastContact\.0 = STRING: 2026-12-4,20:0:0\.0,\+0:0/);

    const regained = await trapd.waitFor('impCdrPeerRegained');
    t.regex(regained, /impCdrPeerState\.0 = INTEGER: syncing\(4\)/);
    t.regex(regained, /impCdrPeerBacklog\.0 = Gauge32: 42/);
    t.is(trapd.output.filter((line) => line.includes('impCdrPeerLost')).length, 1);
  } finally {
    await service.stop();
  }
});

test.serial('stale feed trap pins values', async (t) => {
  const port = await freeUdpPort();
  const text = ['paths:', '  state: .', '  run: run', snmpConfig(port, trapd.port)].join('\n');
  const config = parseConfig(text, join(node.dir, 'stale.yaml'));
  // The repository refreshes its feeds on time, so a feed whose last success is two hours old with a
  // refresh of one hour comes from a fixed source. The 900 ms margin keeps the age at the first poll,
  // which runs at once, at exactly 7200 s.
  const lastSuccessMs = Date.now() - 7_200_900;
  const feed = { definition: { id: 'drop-mirror', refreshSeconds: 3600 }, entries: 989, lastAttemptMs: lastSuccessMs, lastSuccessMs };
  const service = new SnmpService(config, resolveSnmpSettings(config.snmp), createLogger('snmp-test', 'silent'), {
    source: {
      read: async () => ({
        status: { nodeId: 'node-feeds', softwareVersion: '0.1.0', state: 'open', objects: {}, traffic: {}, clients: [] },
        pair: { replicationState: 'unpaired' },
        feeds: [feed],
      }),
    },
  });
  await service.start();
  try {
    const trap = await trapd.waitFor('STRING: drop-mirror');
    t.regex(trap, /snmpTrapOID\.0 = OID: IMP-CDR-MIB::impCdrFeedStale\t/);
    t.regex(trap, /impCdrFeedName\.1 = STRING: drop-mirror\t/);
    t.regex(trap, /impCdrFeedState\.1 = INTEGER: stale\(3\)\t/);
    t.true(trap.includes(`impCdrFeedLastSuccess.1 = STRING: ${dateAndTimeText(lastSuccessMs)}\t`), trap);
    t.regex(trap, /impCdrFeedAge\.1 = Gauge32: 7200 seconds$/);

    const at = `udp:127.0.0.1:${port}`;
    const state = await netSnmp('snmpget', [...v3Args(), '-Oqv', at, 'IMP-CDR-MIB::impCdrFeedState.1', 'IMP-CDR-MIB::impCdrFeedEntries.1', 'IMP-CDR-MIB::impCdrFeedCount.0']);
    t.deepEqual(state.stdout.trim().split('\n'), ['stale', '989', '1']);

    await sleep(POLL_INTERVAL_MS * 3);
    t.is(trapd.output.filter((line) => line.includes('STRING: drop-mirror')).length, 1);
  } finally {
    await service.stop();
  }
});
