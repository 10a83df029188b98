/**
 * The SNMP file editing behind console option 4, called directly: each rejected change leaves cdr.yaml
 * and the saved previous file as they were.
 */

import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';
import { parse as parseYaml } from 'yaml';

import { describeSnmpSettings, generateEngineId, readSnmpSettings, updateSnmpStandalone } from '../firmware/console-snmp.js';
import { isCdrError } from '../services/common/errors.js';

const ORIGINAL = [
  '# kept by every change',
  'paths:',
  '  state: .',
  'snmp:',
  '  mode: standalone',
  '  standalone:',
  '    engineId: 80007ed90501020304',
  '    users:',
  '      - name: ops',
  '        authPassphrase: opsauth1',
  '        privPassphrase: opspriv1',
  '    communities: [public-ro]',
  '',
].join('\n');

function writeConfig(t: { teardown(fn: () => void): void }): { configPath: string; previousPath: string } {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-console-snmp-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const configPath = join(dir, 'cdr.yaml');
  writeFileSync(configPath, ORIGINAL, { mode: 0o640 });
  return { configPath, previousPath: join(dir, 'console', 'previous-cdr.yaml') };
}

test('invalid SNMP changes write nothing', (t) => {
  const cases: Array<[string, Parameters<typeof updateSnmpStandalone>[2], string, string]> = [
    ['short auth passphrase', (s) => void s.users.push({ name: 'noc', authPassphrase: 'short7x', privPassphrase: 'privpas8' }), 'ERR_CONFIG_INVALID', 'snmp.standalone.users.1.authPassphrase'],
    ['short priv passphrase', (s) => void s.users.push({ name: 'noc', authPassphrase: 'authpas8', privPassphrase: 'short7x' }), 'ERR_SNMP_CONFIG_INVALID', 'snmp.standalone.users[1].privPassphrase'],
    ['user listed twice', (s) => void s.users.push({ name: 'ops', authPassphrase: 'authpas8', privPassphrase: 'privpas8' }), 'ERR_SNMP_CONFIG_INVALID', 'snmp.standalone.users[1].name'],
    ['trap target of unknown user', (s) => void s.trapTargets.push({ host: '192.0.2.9', port: 162, user: 'nobody' }), 'ERR_SNMP_CONFIG_INVALID', 'snmp.standalone.trapTargets[0].user'],
    ['port out of range', (s) => void s.trapTargets.push({ host: '192.0.2.9', port: 65536, user: 'ops' }), 'ERR_CONFIG_INVALID', 'snmp.standalone.trapTargets.0.port'],
  ];
  for (const [name, change, code, key] of cases) {
    const { configPath, previousPath } = writeConfig(t);
    const error = t.throws(() => updateSnmpStandalone(configPath, previousPath, change), undefined, name);
    t.true(isCdrError(error), name);
    t.is((error as { code?: string }).code, code, name);
    t.is((error as { details?: { key?: string } }).details?.key, key, name);
    t.is(readFileSync(configPath, 'utf8'), ORIGINAL, name);
    t.false(existsSync(previousPath), name);
  }
});

test('valid SNMP change keeps comments and mode', (t) => {
  const { configPath, previousPath } = writeConfig(t);
  updateSnmpStandalone(configPath, previousPath, (standalone) => {
    standalone.trapTargets.push({ host: '192.0.2.9', port: 10162, user: 'ops' });
  });

  const written = readFileSync(configPath, 'utf8');
  t.true(written.startsWith('# kept by every change\n'));
  t.is(statSync(configPath).mode & 0o777, 0o640, 'the file keeps its mode because it contains passphrases');
  t.deepEqual((parseYaml(written) as { snmp: { standalone: { trapTargets: unknown } } }).snmp.standalone.trapTargets, [
    { host: '192.0.2.9', port: 10162, user: 'ops' },
  ]);
  t.is(readFileSync(previousPath, 'utf8'), ORIGINAL);
  t.is(readSnmpSettings(configPath).standalone.communities.length, 1);
});

test('SNMP description hides secrets', (t) => {
  const { configPath } = writeConfig(t);
  const lines = describeSnmpSettings(readSnmpSettings(configPath));

  t.deepEqual(lines, [
    'SNMP mode standalone: agent on 127.0.0.1:1161 (UDP).',
    'Engine id: 80007ed90501020304',
    'SNMPv3 users:',
    '  ops: authPriv, authentication sha256, privacy aes128',
    'v2c communities: 1 (not shown)',
    'Trap targets: none',
  ]);
  for (const secret of ['opsauth1', 'opspriv1', 'public-ro']) {
    t.false(lines.join('\n').includes(secret), secret);
  }
});

test('generated engine id format', (t) => {
  const engineId = generateEngineId(32473);
  t.regex(engineId, /^80007ed905[0-9a-f]{16}$/);
  t.not(generateEngineId(32473), engineId);
});
