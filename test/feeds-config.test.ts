import test from 'ava';

import { parseConfig } from '../services/common/config.js';
import { DEFAULT_CONFIG } from '../services/common/config-schema.js';
import { CdrError, type ErrorCode } from '../services/common/errors.js';
import { checkFeedDefinition, FEED_LIMITS } from '../services/repository/feeds/definition.js';

const SOURCE = '/etc/imp-cdr/cdr.yaml';

function parseError(text: string): CdrError | undefined {
  try {
    parseConfig(text, SOURCE);
    return undefined;
  } catch (error) {
    return error as CdrError;
  }
}

test('defaults bind DNS to loopback', (t) => {
  t.is(DEFAULT_CONFIG.dns.host, '127.0.0.1');
  t.is(DEFAULT_CONFIG.dns.port, 5353);
  t.deepEqual(DEFAULT_CONFIG.dnsbl.resolvers, []);
  t.deepEqual(DEFAULT_CONFIG.dnsbl.lists, []);
});

/** Integer limits of the feeds, dns and dnsbl sections at their exact bounds and one beyond. */
const bounds = [
  { section: 'feeds', key: 'refreshSeconds', minimum: 0, maximum: 604_800 },
  { section: 'feeds', key: 'maxBytes', minimum: 1, maximum: 1_073_741_824 },
  { section: 'feeds', key: 'timeoutMs', minimum: 100, maximum: 600_000 },
  { section: 'feeds', key: 'fallbackGraceSeconds', minimum: 0, maximum: 86_400 },
  { section: 'feeds', key: 'fallbackGracePercent', minimum: 0, maximum: 100 },
  { section: 'dns', key: 'port', minimum: 0, maximum: 65535 },
  { section: 'dns', key: 'defaultTtl', minimum: 0, maximum: 2_147_483_647 },
  { section: 'dnsbl', key: 'timeoutMs', minimum: 100, maximum: 60_000 },
  { section: 'dnsbl', key: 'negativeTtlSeconds', minimum: 0, maximum: 86_400 },
  { section: 'dnsbl', key: 'maxTtlSeconds', minimum: 0, maximum: 604_800 },
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

const BAD_SECTIONS: { name: string; yaml: string; code: ErrorCode }[] = [
  { name: 'unknown dns key', yaml: 'dns:\n  adress: 127.0.0.1\n', code: 'ERR_CONFIG_UNKNOWN_KEY' },
  { name: 'resolver without port', yaml: 'dnsbl:\n  resolvers: ["127.0.0.1"]\n', code: 'ERR_CONFIG_INVALID' },
  { name: 'resolver as host name', yaml: 'dnsbl:\n  resolvers: ["dns.example:53"]\n', code: 'ERR_CONFIG_INVALID' },
  { name: 'nine resolvers', yaml: `dnsbl:\n  resolvers: [${Array(9).fill('"127.0.0.1:53"').join(', ')}]\n`, code: 'ERR_CONFIG_INVALID' },
  { name: 'list without zone', yaml: 'dnsbl:\n  lists:\n    - dailyBudget: 5\n', code: 'ERR_CONFIG_INVALID' },
  { name: 'list with unknown key', yaml: 'dnsbl:\n  lists:\n    - zone: zen.test\n      budget: 5\n', code: 'ERR_CONFIG_UNKNOWN_KEY' },
  { name: 'index zone with space', yaml: 'dns:\n  indexZone: "bad zone"\n', code: 'ERR_CONFIG_INVALID' },
];

for (const bad of BAD_SECTIONS) {
  test(`config rejected: ${bad.name}`, (t) => {
    t.is(parseError(bad.yaml)?.code, bad.code);
  });
}

test('feed limits exact and one beyond', (t) => {
  const base = { id: 'f', source: '/srv/f.txt', format: 'iplist' as const, zone: '', category: 'block', refreshSeconds: 0, maxBytes: 1, timeoutMs: 100 };
  for (const [field, { minimum, maximum }] of Object.entries(FEED_LIMITS)) {
    for (const value of [minimum, maximum]) {
      t.is(checkFeedDefinition({ ...base, [field]: value })[field as keyof typeof FEED_LIMITS], value, `${field}=${value}`);
    }
    for (const value of [minimum - 1, maximum + 1]) {
      if (field === 'refreshSeconds' && value === 0) {
        continue;
      }
      const error = t.throws(() => checkFeedDefinition({ ...base, [field]: value }), { instanceOf: CdrError });
      t.is(error?.code, 'ERR_FEED_INVALID', `${field}=${value}`);
      t.true(error?.message.startsWith(`feed ${field} must be`), error?.message);
    }
  }
  t.is(checkFeedDefinition({ ...base, refreshSeconds: 0 }).refreshSeconds, 0, '0 means manual refresh');
  t.is(checkFeedDefinition({ ...base, zone: 'BL.Example.NET.' }).zone, 'bl.example.net');
  t.is(checkFeedDefinition({ ...base, id: 'a'.repeat(63) }).id.length, 63);
  t.throws(() => checkFeedDefinition({ ...base, id: 'a'.repeat(64) }), { instanceOf: CdrError });
  t.throws(() => checkFeedDefinition({ ...base, format: 'dmarc', zone: 'rua.example' }), { instanceOf: CdrError });
});
