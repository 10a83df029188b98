/**
 * Benchmark: varbinds per second of `snmpbulkwalk` over the IMP-CDR-MIB subtree (AgentX subagent
 * behind snmpd, and the standalone agent) against snmpd walking its own MIB-II, in the same run.
 *
 *     make bench-snmp            (node dist/bench/snmp-walk.js [ROUNDS] [CLIENTS])
 *
 * Each round runs one snmpbulkwalk process per target with SNMPv3 authPriv (SHA-256, AES-128) and
 * 25 repetitions per GetBulk, so every figure includes process start and USM key localisation, equally
 * for all targets. Everything listens on 127.0.0.1.
 */

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import { kindToWire } from '../modules/protocol/constants.js';
import type { ImpProtocolClient } from '../modules/protocol/client.js';
import { connectReady, enroll, removeNode, SHARED_DATA, startNode } from '../test/helpers/node.js';
import { freeUdpPort, netSnmpEnv, NOC_USER, removePeer, startSnmpAgent, startSnmpd, TEST_ENGINE_ID, v3Args } from '../test/helpers/snmp.js';

const execFileAsync = promisify(execFile);
const ROOT_OID = '1.3.6.1.4.1.32473';
const MIB_2 = '1.3.6.1.2.1';

const rounds = Number(process.argv[2] ?? 20);
const clientCount = Number(process.argv[3] ?? 20);

/** Runs one snmpbulkwalk and returns the varbinds it printed and the wall time in milliseconds. */
async function bulkwalk(target: string, oid: string): Promise<{ varbinds: number; ms: number }> {
  const started = process.hrtime.bigint();
  const { stdout } = await execFileAsync('snmpbulkwalk', [...v3Args(), '-Cr25', '-On', '-t', '5', target, oid], {
    env: netSnmpEnv(),
    maxBuffer: 256 * 1024 * 1024,
  });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  const varbinds = stdout.split('\n').filter((line) => line.startsWith('.') && !line.includes('No more variables left')).length;
  return { varbinds, ms };
}

async function measure(name: string, target: string, oid: string) {
  let varbinds = 0;
  let ms = 0;
  let perWalk = 0;
  for (let round = 0; round < rounds; round++) {
    const result = await bulkwalk(target, oid);
    varbinds += result.varbinds;
    ms += result.ms;
    perWalk = result.varbinds;
  }
  return { name, perWalk, rate: (varbinds / ms) * 1000, msPerWalk: ms / rounds };
}

async function main(): Promise<void> {
  const standalonePort = await freeUdpPort();
  const snmpd = await startSnmpd();
  const node = await startNode({
    extraConfig: [
      'snmp:',
      '  agentx:',
      `    port: ${snmpd.agentxPort}`,
      '  standalone:',
      `    port: ${standalonePort}`,
      `    engineId: ${TEST_ENGINE_ID}`,
      '    users:',
      `      - name: ${NOC_USER.name}`,
      `        authPassphrase: ${NOC_USER.authPassphrase}`,
      `        privPassphrase: ${NOC_USER.privPassphrase}`,
    ].join('\n'),
  });
  const standaloneConfig = join(node.dir, 'standalone.yaml');
  writeFileSync(standaloneConfig, readFileSync(node.configPath, 'utf8').replace('snmp:\n', 'snmp:\n  mode: standalone\n'));

  const subagent = await startSnmpAgent(node.configPath, node.dir);
  const standalone = await startSnmpAgent(standaloneConfig, node.dir);

  // Connected IMPs fill impCdrClientTable; each observes real domains from the disposable-domain list.
  const domains = readFileSync(join(SHARED_DATA, 'domains', 'disposable-email-domains', 'disposable_email_blocklist.conf'), 'utf8')
    .split('\n')
    .filter((line) => line && !line.startsWith('#'));
  const clients: ImpProtocolClient[] = [];
  for (let index = 0; index < clientCount; index++) {
    const impId = `imp-bench-${index}`;
    const client = await connectReady(node, await enroll(node, impId), impId);
    await client.request({
      observe: {
        sequence: 1,
        observations: domains.slice(index * 50, index * 50 + 50).map((key) => ({ object: { kind: kindToWire('domain'), key }, intervalStartMs: Date.now(), counters: { messages: 1 } })),
      },
    });
    clients.push(client);
  }
  // The default poll interval is 5 s; wait for one poll after the last client connected.
  await new Promise((resolveWait) => setTimeout(resolveWait, 6000));

  try {
    const snmpdTarget = `udp:127.0.0.1:${snmpd.udpPort}`;
    const results = [
      await measure('snmpd MIB-II (1.3.6.1.2.1)', snmpdTarget, MIB_2),
      // A small snmpd subtree, for walks of a size close to IMP-CDR-MIB's, where process start and
      // USM discovery weigh more than the varbinds.
      await measure('snmpd interfaces (1.3.6.1.2.1.2)', snmpdTarget, `${MIB_2}.2`),
      await measure('IMP-CDR-MIB via snmpd + AgentX subagent', snmpdTarget, ROOT_OID),
      await measure('IMP-CDR-MIB via standalone agent', `udp:127.0.0.1:${standalonePort}`, ROOT_OID),
    ];
    const baseline = results[0]!.rate;
    process.stdout.write(`rounds ${rounds}, clients ${clientCount}\n`);
    process.stdout.write('| walk | varbinds per walk | ms per walk | varbinds/s | ratio to snmpd MIB-II |\n| --- | ---: | ---: | ---: | ---: |\n');
    for (const result of results) {
      process.stdout.write(
        `| ${result.name} | ${result.perWalk} | ${result.msPerWalk.toFixed(1)} | ${result.rate.toFixed(0)} | ${(result.rate / baseline).toFixed(2)} |\n`,
      );
    }
  } finally {
    for (const client of clients) {
      await client.close().catch(() => undefined);
    }
    await subagent.stop();
    await standalone.stop();
    await node.stop();
    await snmpd.stop();
    removeNode(node);
    removePeer(snmpd);
  }
}

await main();
