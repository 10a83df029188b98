/**
 * The AgentX subagent under a real snmpd master agent: walks through snmpd, reconnection after snmpd
 * restarts, the node state while the repository is down, and a notification forwarded by snmpd to a
 * real snmptrapd. Everything listens on 127.0.0.1.
 */

import { join } from 'node:path';

import test from 'ava';

import type { ImpProtocolClient } from '../modules/protocol/client.js';
import { parseConfig } from '../services/common/config.js';
import { createLogger } from '../services/common/logger.js';
import { SnmpService } from '../services/snmp/service.js';
import { resolveSnmpSettings } from '../services/snmp/settings.js';
import { cdrctl, connectReady, enroll, removeNode, SHARED_DATA, startNode, type TestNode } from './helpers/node.js';
import {
  dateAndTimeText,
  feedLastSuccessMs,
  netSnmp,
  removePeer,
  startSnmpAgent,
  startSnmpd,
  startSnmptrapd,
  v3Args,
  type Peer,
  type Snmpd,
  type Snmptrapd,
} from './helpers/snmp.js';

const ROOT_OID = '1.3.6.1.4.1.32473';
const POLL_INTERVAL_MS = 200;
const SPAMHAUS_DROP = join(SHARED_DATA, 'ip', 'spamhaus-drop', 'secops-mirror', 'drop.txt');

let node: TestNode;
let snmpd: Snmpd;
let trapd: Snmptrapd;
let agent: Peer;
let target: string;
let client: ImpProtocolClient;

const sleep = (ms: number) => new Promise((resolveSleep) => setTimeout(resolveSleep, ms));

async function getValue(name: string): Promise<string> {
  const result = await netSnmp('snmpget', [...v3Args(), '-Oqv', target, name]);
  if (result.code !== 0) {
    throw new Error(`snmpget ${name} failed: ${result.stderr}`);
  }
  return result.stdout.trim();
}

test.before(async () => {
  trapd = await startSnmptrapd();
  snmpd = await startSnmpd({ trapPort: trapd.port });
  target = `udp:127.0.0.1:${snmpd.udpPort}`;
  node = await startNode({
    extraConfig: [
      'snmp:',
      '  mode: agentx',
      `  pollIntervalMs: ${POLL_INTERVAL_MS}`,
      '  agentx:',
      `    port: ${snmpd.agentxPort}`,
      '    reconnectMinMs: 100',
      '    reconnectMaxMs: 400',
    ].join('\n'),
  });
  agent = await startSnmpAgent(node.configPath, node.dir);
  client = await connectReady(node, await enroll(node, 'imp-agentx-1'), 'imp-agentx-1');
  const added = await cdrctl(node, ['feeds', 'add', 'drop', SPAMHAUS_DROP, 'iplist']);
  if (added.code !== 0) {
    throw new Error(`cdrctl feeds add failed: ${added.stdout}${added.stderr}`);
  }
  await sleep(POLL_INTERVAL_MS * 3);
});

test.after.always(async () => {
  await client?.close().catch(() => undefined);
  await agent?.stop();
  await node?.stop();
  await snmpd?.stop();
  await trapd?.stop();
  if (node) removeNode(node);
  if (snmpd) removePeer(snmpd);
  if (trapd) removePeer(trapd);
});

test.serial('walk through snmpd matches status', async (t) => {
  const result = await cdrctl(node, ['status', '--json']);
  t.is(result.code, 0, result.stderr);
  const status = JSON.parse(result.stdout) as { nodeId: string; softwareVersion: string; policyVersion: number; traffic: Record<string, number> };

  const walk = await netSnmp('snmpwalk', [...v3Args(), target, 'IMP-CDR-MIB::impCdrMIB']);
  t.is(walk.code, 0, walk.stderr);
  t.regex(walk.stdout, new RegExp(`IMP-CDR-MIB::impCdrNodeId\\.0 = STRING: ${status.nodeId}\\n`));
  t.regex(walk.stdout, new RegExp(`IMP-CDR-MIB::impCdrNodeSoftwareVersion\\.0 = STRING: ${status.softwareVersion}\\n`));
  t.regex(walk.stdout, /IMP-CDR-MIB::impCdrNodeState\.0 = INTEGER: open\(4\)\n/);
  t.regex(walk.stdout, new RegExp(`IMP-CDR-MIB::impCdrNodePolicyVersion\\.0 = Gauge32: ${status.policyVersion}\\n`));
  t.regex(walk.stdout, new RegExp(`IMP-CDR-MIB::impCdrTrafficObservations\\.0 = Counter64: ${status.traffic.observations}\\n`));
  // DateAndTime goes through AgentX as 11 binary octets; snmpd hands them on unchanged.
  t.regex(walk.stdout, /IMP-CDR-MIB::impCdrNodeLastPoll\.0 = STRING: \d{4}-\d{1,2}-\d{1,2},\d{1,2}:\d{1,2}:\d{1,2}\.\d,\+0:0\n/);
  t.regex(walk.stdout, /IMP-CDR-MIB::impCdrPeerLastContact\.0 = STRING: 0-0-0,0:0:0\.0\n/);
  t.regex(walk.stdout, /IMP-CDR-MIB::impCdrFeedCount\.0 = Gauge32: 1\n/);
  const lines = walk.stdout.trim().split('\n');
  // 37 scalars, one client row of 8 columns and one feed row of 5.
  t.is(lines.length, 37 + 8 + 5);
});

test.serial('snmptable through snmpd', async (t) => {
  const clients = await netSnmp('snmptable', [...v3Args(), '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrClientTable']);
  t.is(clients.code, 0, clients.stderr);
  const cells = clients.stdout.trim().split('|');
  t.is(cells[0], 'imp-agentx-1');
  t.is(cells[1], 'cluster-test');
  t.regex(cells[5]!, /^\d{4}-\d{1,2}-\d{1,2},/);

  const listed = await cdrctl(node, ['feeds', 'list']);
  t.is(listed.code, 0, listed.stderr);
  const listedCells = listed.stdout.trim().split('\n')[1]!.split('\t');
  t.is(listedCells[0], 'drop');
  t.is(listedCells[3], '989');

  const feeds = await netSnmp('snmptable', [...v3Args(), '-OU', '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrFeedTable']);
  t.is(feeds.code, 0, feeds.stderr);
  const feedCells = feeds.stdout.trim().split('|');
  t.is(feedCells.length, 5, feeds.stdout);
  t.is(feedCells[0], listedCells[0]);
  t.is(feedCells[1], 'ok');
  t.is(feedCells[2], listedCells[3]);
  // DateAndTime goes through AgentX as binary octets, like impCdrNodeLastPoll.
  const lastSuccessMs = await feedLastSuccessMs(node, 'drop');
  t.is(feedCells[3], dateAndTimeText(lastSuccessMs));
  const age = Number(feedCells[4]);
  t.true(age >= 0 && age <= Math.ceil((Date.now() - lastSuccessMs) / 1000), `age ${feedCells[4]} s`);
});

test.serial('snmpd serves its own MIB-II', async (t) => {
  const walk = await netSnmp('snmpwalk', [...v3Args(), '-On', target]);
  t.is(walk.code, 0, walk.stderr);
  t.regex(walk.stdout, /^\.1\.3\.6\.1\.2\.1\.1\.1\.0 = STRING: /);
  t.false(walk.stdout.includes(`.${ROOT_OID}.`));
});

test.serial('bulkwalk through snmpd', async (t) => {
  const walk = await netSnmp('snmpbulkwalk', [...v3Args(), '-Cr25', '-On', target, ROOT_OID]);
  t.is(walk.code, 0, walk.stderr);
  const lines = walk.stdout.trim().split('\n');
  t.is(lines.length, 37 + 8 + 5, walk.stdout);
  t.is(lines[0]!.split(' = ')[0], `.${ROOT_OID}.1.1.1.0`);
  t.is(lines.at(-1)!.split(' = ')[0], `.${ROOT_OID}.1.7.3.0`);
});

test.serial('missing instance through snmpd', async (t) => {
  const result = await netSnmp('snmpget', [...v3Args(), target, 'IMP-CDR-MIB::impCdrNodeId.1', `${ROOT_OID}.1.99.1.0`]);
  t.is(result.code, 0, result.stderr);
  t.regex(result.stdout, /impCdrNodeId\.1 = No Such Instance currently exists at this OID/);
  t.regex(result.stdout, /No Such Object available on this agent at this OID/);
});

test.serial('subagent reconnects after snmpd restart', async (t) => {
  const { udpPort, agentxPort, dir } = snmpd;
  await snmpd.stop();
  await agent.waitFor('AgentX master not available');
  snmpd = await startSnmpd({ udpPort, agentxPort, trapPort: trapd.port, dir });

  const deadline = Date.now() + 10_000;
  let state = '';
  while (Date.now() < deadline) {
    const result = await netSnmp('snmpget', [...v3Args(), '-Oqv', target, 'IMP-CDR-MIB::impCdrNodeState.0']);
    state = result.stdout.trim();
    if (state === 'open') {
      break;
    }
    await sleep(200);
  }
  t.is(state, 'open');
  t.true(agent.output.filter((line) => line.includes('AgentX session open')).length >= 2);

  // The tables are registered again too, not only the scalars.
  const clients = await netSnmp('snmptable', [...v3Args(), '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrClientTable']);
  t.is(clients.code, 0, clients.stderr);
  t.is(clients.stdout.trim().split('|')[0], 'imp-agentx-1');
  const feeds = await netSnmp('snmptable', [...v3Args(), '-Cf', '|', '-CH', target, 'IMP-CDR-MIB::impCdrFeedTable']);
  t.is(feeds.code, 0, feeds.stderr);
  t.is(feeds.stdout.trim().split('|')[0], 'drop');
});

test.serial('node down seen through snmpd', async (t) => {
  await client.close();
  await node.stop();
  const trap = await trapd.waitFor('impCdrNodeStateChanged');
  t.regex(trap, /impCdrNodeState\.0 = INTEGER: unreachable\(1\)/);
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeState.0'), 'unreachable');
  t.is(await getValue('IMP-CDR-MIB::impCdrNodeRole.0'), 'unknown');
});

test.serial('counter64 maximum through snmpd', async (t) => {
  // A second snmpd, because the first one already has IMP-CDR-MIB registered by the subagent under test.
  const master = await startSnmpd();
  const text = ['paths:', '  state: .', '  run: run', 'snmp:', '  pollIntervalMs: 200', '  agentx:', `    port: ${master.agentxPort}`].join('\n');
  const config = parseConfig(text, `${master.dir}/cdr.yaml`);
  // Status source with fixed counters, used in place of the repository because its counters cannot reach 2^64 in a test.
  const service = new SnmpService(config, resolveSnmpSettings(config.snmp), createLogger('snmp-test', 'silent'), {
    source: {
      read: async () => ({
        status: { nodeId: 'node-counter64', state: 'open', traffic: { observations: (2n ** 64n - 1n) as unknown as number, lookups: (2n ** 63n) as unknown as number } },
        pair: { replicationState: 'unpaired' },
        feeds: [],
      }),
    },
  });
  await service.start();
  try {
    await service.ready();
    const at = `udp:127.0.0.1:${master.udpPort}`;
    const result = await netSnmp('snmpget', [...v3Args(), '-Oqv', at, 'IMP-CDR-MIB::impCdrTrafficObservations.0', 'IMP-CDR-MIB::impCdrTrafficLookups.0', 'IMP-CDR-MIB::impCdrTrafficErrors.0']);
    t.is(result.code, 0, result.stderr);
    t.deepEqual(result.stdout.trim().split('\n'), ['18446744073709551615', '9223372036854775808', '0']);
  } finally {
    await service.stop();
    await master.stop();
    removePeer(master);
  }
});
