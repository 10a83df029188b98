import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import test from 'ava';

import { DEFAULT_CONFIG, ensureDevelopmentConfig, loadConfig, parseConfig } from '../services/common/config.js';
import { CONFIG_SCHEMA } from '../services/common/config-schema.js';
import { CdrError } from '../services/common/errors.js';

const SOURCE = '/etc/imp-cdr/cdr.yaml';

/** Top-level sections and `limits` keys, in schema order, as unknown-key errors list them. */
const SECTION_NAMES = Object.keys(CONFIG_SCHEMA.properties).join(', ');
const LIMIT_NAMES = Object.keys((CONFIG_SCHEMA.properties['limits'] as { properties: object }).properties).join(', ');

let dir: string;

test.before(() => {
  dir = mkdtempSync(join(tmpdir(), 'imp-cdr-config-'));
});

test.after.always(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Parses `text` and returns the CdrError it throws, or undefined when it parses. */
function parseError(text: string): CdrError | undefined {
  try {
    parseConfig(text, SOURCE);
    return undefined;
  } catch (error) {
    if (error instanceof CdrError) return error;
    throw error;
  }
}

test('empty file gives the defaults', (t) => {
  t.deepEqual(parseConfig('', SOURCE), DEFAULT_CONFIG);
  t.deepEqual(parseConfig('# only a comment\n', SOURCE), DEFAULT_CONFIG);
});

test('config merges a section over its defaults', (t) => {
  const config = parseConfig('limits:\n  maxInFlight: 8\n', SOURCE);

  t.is(config.limits.maxInFlight, 8);
  t.is(config.limits.maxLookupKeys, DEFAULT_CONFIG.limits.maxLookupKeys);
  t.is(config.limits.maxFrameBytes, DEFAULT_CONFIG.limits.maxFrameBytes);
  t.is(DEFAULT_CONFIG.limits.maxInFlight, 64);
});

test('config is deeply frozen', (t) => {
  const config = parseConfig('imp:\n  port: 7400\n', SOURCE);

  t.true(Object.isFrozen(config));
  for (const [name, section] of Object.entries(config)) {
    t.true(Object.isFrozen(section), `section ${name} is not frozen`);
  }
  t.throws(() => {
    (config.imp as { port: number }).port = 1;
  }, { instanceOf: TypeError });
  t.is(config.imp.port, 7400);
});

test('config paths resolve against its folder', (t) => {
  const folder = join(dir, 'relative');
  mkdirSync(folder);
  const path = join(folder, 'cdr.yaml');
  writeFileSync(path, 'paths:\n  state: data/state\n  run: ../run\n');

  const { config, path: loadedPath } = loadConfig(path);
  t.is(loadedPath, path);
  t.is(config.paths.state, join(folder, 'data', 'state'));
  t.is(config.paths.run, join(dir, 'run'));
  // tls.dir and control.socket are relative to paths.state and paths.run, so they stay as written.
  t.is(config.tls.dir, 'tls');
  t.is(config.control.socket, 'control.sock');
});

test('config keeps absolute paths', (t) => {
  const config = parseConfig('paths:\n  state: /srv/cdr\n  run: /run/cdr\n', join(dir, 'cdr.yaml'));

  t.is(config.paths.state, '/srv/cdr');
  t.is(config.paths.run, '/run/cdr');
});

test('default paths stay absolute', (t) => {
  const config = parseConfig('', join(dir, 'cdr.yaml'));

  t.is(config.paths.state, '/var/lib/imp-cdr');
  t.is(config.paths.run, '/run/imp-cdr');
});

/**
 * Bad configurations. `key` and `expected` must appear in the message, and `at` is the line and column
 * of the offending key (unknown keys) or value (everything else) in `text`.
 */
const badConfigs = [
  {
    name: 'top-level typo',
    text: 'log:\n  level: info\nlimit:\n  maxInFlight: 8\n',
    code: 'ERR_CONFIG_UNKNOWN_KEY',
    key: '"limit"',
    expected: `expected one of: ${SECTION_NAMES}`,
    at: '3:1',
  },
  {
    name: 'nested typo',
    text: 'log:\n  level: info\nlimits:\n  maxLookupKeys: 10\n  maxInFlght: 8\n',
    code: 'ERR_CONFIG_UNKNOWN_KEY',
    key: '"limits.maxInFlght"',
    expected: `expected one of: ${LIMIT_NAMES}`,
    at: '5:3',
  },
  {
    name: 'maxInFlight 0',
    text: 'limits:\n  maxInFlight: 0\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'limits.maxInFlight',
    expected: 'must be an integer from 1 to 4096, got 0',
    at: '2:16',
  },
  {
    name: 'maxInFlight 4097',
    text: 'imp:\n  port: 7300\n\nlimits:\n  maxInFlight: 4097\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'limits.maxInFlight',
    expected: 'must be an integer from 1 to 4096, got 4097',
    at: '5:16',
  },
  {
    name: 'port as a string',
    text: 'imp:\n  host: 127.0.0.1\n  port: "7300"\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'imp.port',
    expected: 'must be an integer from 0 to 65535, got "7300"',
    at: '3:9',
  },
  {
    name: 'fractional port',
    text: 'imp:\n  port: 7300.5\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'imp.port',
    expected: 'must be an integer from 0 to 65535, got 7300.5',
    at: '2:9',
  },
  {
    name: 'section as a scalar',
    text: 'node:\n  id: ""\nlimits: 5\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'limits',
    expected: 'must be a mapping, got 5',
    at: '3:9',
  },
  {
    name: 'boolean as a word',
    text: 'tls:\n  generate: yes\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'tls.generate',
    expected: 'must be true or false, got "yes"',
    at: '2:13',
  },
  {
    name: 'unknown log level',
    text: 'log:\n  level: verbose\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'log.level',
    expected: 'must be one of "trace", "debug", "info", "warn", "error", "fatal", "silent", got "verbose"',
    at: '2:10',
  },
  {
    name: 'minOosVersion with a prefix',
    text: 'imp:\n  minOosVersion: v2.5\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'imp.minOosVersion',
    expected: 'must be a string matching /^[0-9]+\\.[0-9]+(\\.[0-9]+)?$/, got "v2.5"',
    at: '2:18',
  },
  {
    name: 'minOosVersion as a number',
    text: 'log:\n  level: info\nimp:\n  minOosVersion: 2\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'imp.minOosVersion',
    expected: 'must be a string matching /^[0-9]+\\.[0-9]+(\\.[0-9]+)?$/, got 2',
    at: '4:18',
  },
  {
    name: 'node id in upper case',
    text: 'node:\n  id: Node-1\n',
    code: 'ERR_CONFIG_INVALID',
    key: 'node.id',
    expected: 'must be a string matching /^([a-z0-9][a-z0-9-]{0,62})?$/, got "Node-1"',
    at: '2:7',
  },
] as const;

for (const bad of badConfigs) {
  test(`config rejected: ${bad.name}`, (t) => {
    const error = parseError(bad.text);

    t.is(error?.code, bad.code);
    t.true(error?.message.startsWith(`${SOURCE}:${bad.at}: `), `message does not start with the position: ${error?.message}`);
    t.true(error?.message.includes(bad.key), `message does not name ${bad.key}: ${error?.message}`);
    t.true(error?.message.includes(bad.expected), `message does not say "${bad.expected}": ${error?.message}`);
    t.is(`${error?.details['line']}:${error?.details['column']}`, bad.at);
  });
}

/** Text that is not valid YAML. `at` is where the parser detected the problem, and `reason` its message. */
const brokenYaml = [
  { name: 'tab indentation', text: 'imp:\n  host: a\n\tport: 7300\n', at: '3:1', reason: 'Tabs are not allowed as indentation' },
  { name: 'nested compact mapping', text: 'imp:\n  host: a\n  port: 1: 2\n', at: '3:9', reason: 'Nested mappings are not allowed' },
  { name: 'unequal indentation', text: 'imp:\n  host: a\n port: 7300\n', at: '3:1', reason: 'All mapping items must start at the same column' },
  { name: 'duplicate top-level key', text: 'imp:\n  port: 1\nimp:\n  host: a\n', at: '3:1', reason: 'key "imp" appears twice' },
  { name: 'duplicate nested key', text: 'imp:\n  port: 1\n  port: 2\n', at: '3:3', reason: 'key "imp.port" appears twice' },
] as const;

for (const broken of brokenYaml) {
  test(`config not parsed: ${broken.name}`, (t) => {
    const error = parseError(broken.text);

    t.is(error?.code, 'ERR_CONFIG_PARSE');
    t.true(error?.message.startsWith(`${SOURCE}:${broken.at}: `), `message does not start with the position: ${error?.message}`);
    t.true(error?.message.includes(broken.reason), `message does not say "${broken.reason}": ${error?.message}`);
    t.is(`${error?.details['line']}:${error?.details['column']}`, broken.at);
  });
}

test('duplicate key error names the key', (t) => {
  const error = parseError('imp:\n  port: 1\n  port: 2\n');

  t.is(error?.code, 'ERR_CONFIG_PARSE');
  t.regex(error?.message ?? '', /imp\.port/);
});

test('missing config file is NOT_FOUND', (t) => {
  const path = join(dir, 'absent', 'cdr.yaml');
  const error = t.throws<CdrError>(() => loadConfig(path), { instanceOf: CdrError });

  t.is(error?.code, 'ERR_CONFIG_NOT_FOUND');
  t.true(error?.message.includes(path), `message does not name ${path}: ${error?.message}`);
  t.is(error?.details['path'], path);
});

test('loadConfig error names the file', (t) => {
  const path = join(dir, 'bad-value.yaml');
  writeFileSync(path, 'limits:\n  maxLookupKeys: 10\n  maxInFlight: 0\n');

  const error = t.throws<CdrError>(() => loadConfig(path), { instanceOf: CdrError });
  t.is(error?.code, 'ERR_CONFIG_INVALID');
  t.true(error?.message.startsWith(`${path}:3:16: limits.maxInFlight must be an integer from 1 to 4096`), error?.message);
});

/** Integer limits at their exact bounds: `minimum` and `maximum` are accepted, one beyond is rejected. */
const bounds = [
  { section: 'limits', key: 'maxInFlight', minimum: 1, maximum: 4096 },
  { section: 'limits', key: 'maxFrameBytes', minimum: 1024, maximum: 64 * 1024 * 1024 },
  { section: 'limits', key: 'maxSubscriptions', minimum: 0, maximum: 10_000_000 },
  { section: 'imp', key: 'port', minimum: 0, maximum: 65535 },
  { section: 'index', key: 'bucketSeconds', minimum: 60, maximum: 86_400 },
] as const;

for (const { section, key, minimum, maximum } of bounds) {
  test(`${section}.${key} bounds ${minimum} to ${maximum}`, (t) => {
    for (const value of [minimum, maximum]) {
      const config = parseConfig(`${section}:\n  ${key}: ${value}\n`, SOURCE) as unknown as Record<string, Record<string, number>>;
      t.is(config[section]![key], value);
    }

    for (const value of [minimum - 1, maximum + 1]) {
      const error = parseError(`${section}:\n  ${key}: ${value}\n`);
      t.is(error?.code, 'ERR_CONFIG_INVALID', `${value} was not rejected`);
      t.true(error?.message.includes(`${section}.${key} must be an integer from ${minimum} to ${maximum}, got ${value}`), error?.message);
    }
  });
}

test('development config written only once', (t) => {
  const path = join(dir, 'development', 'var', 'cdr.yaml');

  t.true(ensureDevelopmentConfig(path));
  const written = readFileSync(path, 'utf8');
  const modified = statSync(path).mtimeMs;

  t.false(ensureDevelopmentConfig(path));
  t.is(readFileSync(path, 'utf8'), written);
  t.is(statSync(path).mtimeMs, modified);
});

test('development config keeps an existing file', (t) => {
  const path = join(dir, 'existing', 'cdr.yaml');
  mkdirSync(dirname(path));
  writeFileSync(path, 'log:\n  level: debug\n');

  t.false(ensureDevelopmentConfig(path));
  t.is(readFileSync(path, 'utf8'), 'log:\n  level: debug\n');
});

test('development config loads under its folder', (t) => {
  const folder = join(dir, 'loaded', 'var');
  const path = join(folder, 'cdr.yaml');
  t.false(existsSync(folder));

  t.true(ensureDevelopmentConfig(path));
  const { config } = loadConfig(path);

  t.is(config.paths.state, folder);
  t.is(config.paths.run, join(folder, 'run'));
  // Bundles built in the checkout are verified with the development key that signed them.
  t.is(config.firmware.publicKey, join(folder, 'firmware-dev-key', 'release-key.pem'));
  t.deepEqual({ ...config, paths: DEFAULT_CONFIG.paths, firmware: DEFAULT_CONFIG.firmware }, DEFAULT_CONFIG);
});
