import { mkdirSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { parseConfig } from '../services/common/config.js';
import { CdrError } from '../services/common/errors.js';
import { checkFingerprint, loadOrCreateHostKey } from '../services/pairing/host-key.js';
import { PairingWindow } from '../services/pairing/window.js';

const NOW = 1_800_000_000_000;

function openWindow(seconds: number, maxAttempts: number): { window: PairingWindow; code: string } {
  const window = new PairingWindow();
  const { code } = window.open(seconds, maxAttempts, NOW);
  return { window, code };
}

test('window accepts code until last millisecond', (t) => {
  const { window, code } = openWindow(60, 3);

  t.is(window.expiresMs, NOW + 60_000);
  t.is(window.state(NOW + 59_999), 'open');
  t.deepEqual(window.verify(code, NOW + 59_999), { accepted: true });
  t.is(window.state(NOW + 60_000), 'expired');
  const expired = window.verify(code, NOW + 60_000);
  t.false(expired.accepted);
  t.is(expired.accepted ? undefined : expired.code, 'ERR_PAIR_WINDOW_EXPIRED');
});

test('window ignores case, spaces and hyphens', (t) => {
  const { window, code } = openWindow(60, 3);
  const bare = code.replace('-', '');

  t.deepEqual(window.verify(bare.toLowerCase(), NOW), { accepted: true });
  t.deepEqual(window.verify(` ${bare.slice(0, 4)} ${bare.slice(4)} `, NOW), { accepted: true });
  t.is(window.attempts, 0);
});

for (const maxAttempts of [1, 3, 10]) {
  test(`window locks at maxAttempts ${maxAttempts}`, (t) => {
    const { window, code } = openWindow(60, maxAttempts);

    for (let attempt = 1; attempt <= maxAttempts; attempt += 1) {
      const verdict = window.verify('2222-2222' === code ? '3333-3333' : '2222-2222', NOW);
      t.is(verdict.accepted ? undefined : verdict.code, 'ERR_PAIR_CODE_INVALID', `attempt ${attempt}`);
      t.is(window.attempts, attempt);
    }
    t.is(window.state(NOW), 'locked');
    const locked = window.verify(code, NOW);
    t.is(locked.accepted ? undefined : locked.code, 'ERR_PAIR_TOO_MANY_ATTEMPTS');
    t.is(window.attempts, maxAttempts, 'a rejection of a locked window does not count');
  });

  test(`window open below maxAttempts ${maxAttempts}`, (t) => {
    const { window, code } = openWindow(60, maxAttempts);
    for (let attempt = 1; attempt < maxAttempts; attempt += 1) {
      window.verify('2222-2222' === code ? '3333-3333' : '2222-2222', NOW);
    }
    t.is(window.state(NOW), 'open');
    t.deepEqual(window.verify(code, NOW), { accepted: true });
  });
}

test('closed window rejects every code', (t) => {
  const window = new PairingWindow();
  const never = window.verify('ABCD-EFGH', NOW);
  t.is(never.accepted ? undefined : never.code, 'ERR_PAIR_WINDOW_CLOSED');

  const { code } = window.open(60, 3, NOW);
  window.close();
  t.is(window.state(NOW), 'closed');
  const closed = window.verify(code, NOW);
  t.is(closed.accepted ? undefined : closed.code, 'ERR_PAIR_WINDOW_CLOSED');
});

test('reopening replaces code and attempts', (t) => {
  const { window, code: first } = openWindow(60, 3);
  window.verify('2222-2222' === first ? '3333-3333' : '2222-2222', NOW);
  const { code: second } = window.open(60, 3, NOW);

  t.is(window.attempts, 0);
  t.regex(second, /^[2-9A-HJKMNP-Z]{4}-[2-9A-HJKMNP-Z]{4}$/);
  if (first !== second) {
    const old = window.verify(first, NOW);
    t.is(old.accepted ? undefined : old.code, 'ERR_PAIR_CODE_INVALID');
  }
  t.deepEqual(window.verify(second, NOW), { accepted: true });
});

test('codes differ between windows', (t) => {
  const window = new PairingWindow();
  const codes = new Set<string>();
  for (let index = 0; index < 200; index += 1) {
    codes.add(window.open(60, 3, NOW).code);
  }
  // 200 draws from 31^8 codes collide with a probability of about 2e-8.
  t.is(codes.size, 200);
});

const configRejections: Array<{ yaml: string; code: string }> = [
  { yaml: 'pairing:\n  windowSeconds: 0\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  windowSeconds: 3601\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  maxAttempts: 0\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  maxAttempts: 11\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  port: 65536\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  connectTimeoutMs: 99\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  host: ""\n', code: 'ERR_CONFIG_INVALID' },
  { yaml: 'pairing:\n  code: ABCD-EFGH\n', code: 'ERR_CONFIG_UNKNOWN_KEY' },
];

for (const rejection of configRejections) {
  test(`pairing config rejects ${rejection.yaml.split('\n')[1]!.trim()}`, (t) => {
    const error = t.throws(() => parseConfig(rejection.yaml, '/etc/imp-cdr/cdr.yaml'));
    t.true(error instanceof CdrError);
    t.is<string, string>((error as CdrError).code, rejection.code);
  });
}

test('pairing config limits accepted', (t) => {
  const low = parseConfig('pairing:\n  windowSeconds: 1\n  maxAttempts: 1\n  port: 0\n  connectTimeoutMs: 100\n', '/etc/imp-cdr/cdr.yaml');
  t.is(low.pairing.windowSeconds, 1);
  t.is(low.pairing.maxAttempts, 1);
  const high = parseConfig('pairing:\n  windowSeconds: 3600\n  maxAttempts: 10\n  port: 65535\n  connectTimeoutMs: 600000\n', '/etc/imp-cdr/cdr.yaml');
  t.is(high.pairing.windowSeconds, 3600);
  t.is(high.pairing.maxAttempts, 10);
  const defaults = parseConfig('', '/etc/imp-cdr/cdr.yaml');
  t.is(defaults.pairing.host, '127.0.0.1');
  t.is(defaults.pairing.port, 7302);
});

test('host key created once with mode 0600', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-hostkey-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'pairing', 'ssh_host_ed25519_key');

  const created = loadOrCreateHostKey(path);
  const loaded = loadOrCreateHostKey(path);

  t.true(created.created);
  t.false(loaded.created);
  t.is(loaded.fingerprint, created.fingerprint);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.is(statSync(join(dir, 'pairing')).mode & 0o777, 0o700);
  t.regex(created.privateKey, /^-----BEGIN OPENSSH PRIVATE KEY-----\n/);
});

test('invalid host key file rejected', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-hostkey-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  mkdirSync(join(dir, 'pairing'));
  const path = join(dir, 'pairing', 'ssh_host_ed25519_key');
  writeFileSync(path, 'not a key\n', { mode: 0o600 });

  const error = t.throws(() => loadOrCreateHostKey(path));
  t.is((error as CdrError).code, 'ERR_PAIR_HOST_KEY');
  t.regex((error as CdrError).message, /move it away and restart/);
});

test('fingerprint form checked', (t) => {
  const valid = `SHA256:${'A'.repeat(43)}`;
  t.is(checkFingerprint(` ${valid} `), valid);
  for (const bad of [`SHA256:${'A'.repeat(42)}`, `SHA256:${'A'.repeat(44)}`, `sha256:${'A'.repeat(43)}`, `SHA256:${'A'.repeat(42)}=`, 'MD5:00:11', '']) {
    const error = t.throws(() => checkFingerprint(bad), undefined, bad);
    t.is((error as CdrError).code, 'ERR_PAIR_FINGERPRINT_INVALID', bad);
  }
});
