/**
 * The state paths a factory reset removes, computed from configurations: only paths inside
 * `paths.state` are removed, and any other configured path is returned apart. The reset itself runs
 * through the console in console.test.ts.
 */

import { join } from 'node:path';

import test from 'ava';

import { nodeStatePaths } from '../firmware/factory-reset.js';
import { parseConfig } from '../services/common/config.js';

test('default state paths', (t) => {
  const config = parseConfig('paths:\n  state: /var/lib/imp-cdr\n', '/etc/imp-cdr/cdr.yaml');
  const state = '/var/lib/imp-cdr';
  t.deepEqual(nodeStatePaths(config), {
    inside: [
      join(state, 'index'),
      join(state, 'node-id'),
      join(state, 'peer.json'),
      join(state, 'tls'),
      join(state, 'pairing', 'ssh_host_ed25519_key'),
      join(state, 'pairing'),
      join(state, 'imp-client'),
      join(state, 'imp-spool'),
      join(state, 'console'),
    ],
    outside: [],
  });
});

test('paths not inside the state folder', (t) => {
  const cases: Array<[string, string[]]> = [
    ['tls:\n  dir: /etc/ssl/imp-cdr\n', ['/etc/ssl/imp-cdr']],
    ['tls:\n  dir: .\n', ['/var/lib/imp-cdr']],
    ['tls:\n  dir: ../tls\n', ['/var/lib/tls']],
    ['tls:\n  dir: ../imp-cdr-tls\n', ['/var/lib/imp-cdr-tls']],
    ['pairing:\n  hostKey: /etc/ssh/ssh_host_ed25519_key\n', ['/etc/ssh/ssh_host_ed25519_key']],
  ];
  for (const [yaml, outside] of cases) {
    const config = parseConfig(`paths:\n  state: /var/lib/imp-cdr\n${yaml}`, '/etc/imp-cdr/cdr.yaml');
    const paths = nodeStatePaths(config);
    t.deepEqual(paths.outside, outside, yaml);
    for (const path of outside) {
      t.false(paths.inside.includes(path), `${yaml}: ${path} is not removed`);
    }
    t.true(paths.inside.includes('/var/lib/imp-cdr/index'), yaml);
  }
});
