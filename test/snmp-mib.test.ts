/**
 * IMP-CDR-MIB checked with smilint (libsmi) and against the agent's OID layout with snmptranslate.
 */

import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

import test from 'ava';

import { ImpCdrMibModel } from '../services/snmp/mib-model.js';
import { DEFAULT_ENTERPRISE_NUMBER, NOTIFICATION, ImpCdrOids } from '../services/snmp/oids.js';
import { NOTIFICATION_OBJECTS } from '../services/snmp/notifications.js';
import { BASE_MIB_DIR, MIB_DIR, netSnmpEnv } from './helpers/snmp.js';

const execFileAsync = promisify(execFile);
const MIB_FILE = join(MIB_DIR, 'IMP-CDR-MIB.txt');

async function translate(names: string[]): Promise<string[]> {
  const { stdout } = await execFileAsync('snmptranslate', ['-On', ...names.map((name) => `IMP-CDR-MIB::${name}`)], { env: netSnmpEnv() });
  return stdout.split('\n').filter((line) => line.length > 0);
}

test('smilint level 6 reports nothing', async (t) => {
  // SMIPATH points libsmi at the SMIv2 base modules (RFC 2578 to 2580) that the net-snmp package ships.
  const result = await execFileAsync('smilint', ['-l', '6', '-s', MIB_FILE], { env: { ...process.env, SMIPATH: BASE_MIB_DIR } }).then(
    ({ stdout, stderr }) => ({ code: 0, output: stdout + stderr }),
    (error: { code: number; stdout: string; stderr: string }) => ({ code: error.code, output: error.stdout + error.stderr }),
  );
  t.is(result.output, '');
  t.is(result.code, 0);
});

test('mib enterprise number is the default', (t) => {
  const text = readFileSync(MIB_FILE, 'utf8');
  t.regex(text, new RegExp(`::= \\{ enterprises ${DEFAULT_ENTERPRISE_NUMBER} \\}`));
});

test('agent oids match the mib', async (t) => {
  const model = new ImpCdrMibModel(DEFAULT_ENTERPRISE_NUMBER, { replicationLagThresholdMs: 1, diskFreeThresholdKiB: 1 });
  const providers = model.providers() as { name: string; oid: string; tableColumns?: { number: number; name: string }[] }[];

  const scalars = providers.filter((provider) => !provider.tableColumns);
  const translated = await translate(scalars.map((provider) => provider.name));
  t.deepEqual(translated, scalars.map((provider) => `.${provider.oid}`));

  for (const table of providers.filter((provider) => provider.tableColumns)) {
    const entryName = table.name.replace(/Table$/, 'Entry');
    t.deepEqual(await translate([entryName]), [`.${table.oid}`]);
    const columns = await translate(table.tableColumns!.map((column) => column.name));
    t.deepEqual(columns, table.tableColumns!.map((column) => `.${table.oid}.${column.number}`));
  }
});

test('notification oids match the mib', async (t) => {
  const oids = new ImpCdrOids();
  const names = Object.keys(NOTIFICATION) as (keyof typeof NOTIFICATION)[];
  t.deepEqual(await translate(names), names.map((name) => `.${oids.notification(name)}`));
});

test('notification objects follow the mib', (t) => {
  // The agent sends each notification's OBJECTS in MIB order; it appends impCdrFirmwarePreviousVersion,
  // which has no scalar instance, itself.
  const text = readFileSync(MIB_FILE, 'utf8');
  for (const [name, objects] of Object.entries(NOTIFICATION_OBJECTS)) {
    if (objects.length === 0) {
      continue;
    }
    const block = text.slice(text.indexOf(`${name} NOTIFICATION-TYPE`));
    const listed = block.slice(block.indexOf('{') + 1, block.indexOf('}')).split(',').map((object) => object.trim());
    const expected = listed.filter((object) => object !== 'impCdrFirmwarePreviousVersion');
    t.deepEqual(objects, expected, name);
  }
});
