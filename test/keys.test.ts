import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { domainToASCII } from 'node:url';

import test from 'ava';
import ipaddr from 'ipaddr.js';

import type { ObjectKindName } from '../modules/protocol/constants.js';
import { CdrError } from '../services/common/errors.js';
import { normaliseKey, type NormalisedKey } from '../services/repository/keys.js';
import { SHARED_DATA } from './helpers/node.js';

const PSL_TESTS = join(SHARED_DATA, 'domains', 'public-suffix-list', 'tests.txt');

/** Returns the ERR_KEY_INVALID error that normalising `raw` throws, or undefined when it is accepted. */
function keyError(kind: ObjectKindName, raw: string): CdrError | undefined {
  try {
    normaliseKey(kind, raw);
    return undefined;
  } catch (error) {
    if (error instanceof CdrError) return error;
    throw error;
  }
}

const valid: { kind: ObjectKindName; raw: string; expected: NormalisedKey }[] = [
  {
    kind: 'ip',
    raw: '192.0.2.1',
    expected: { kind: 'ip', key: '192.0.2.1', parents: [{ kind: 'network', key: '192.0.2.0/24' }] },
  },
  {
    kind: 'ip',
    raw: ' 198.51.100.255 ',
    expected: { kind: 'ip', key: '198.51.100.255', parents: [{ kind: 'network', key: '198.51.100.0/24' }] },
  },
  {
    kind: 'ip',
    raw: '2001:DB8:0:0:0:0:0:1',
    expected: { kind: 'ip', key: '2001:db8::1', parents: [{ kind: 'network', key: '2001:db8::/64' }] },
  },
  {
    kind: 'ip',
    raw: '2001:0db8:0000:0000:0001:0000:0000:0001',
    expected: { kind: 'ip', key: '2001:db8::1:0:0:1', parents: [{ kind: 'network', key: '2001:db8::/64' }] },
  },
  {
    kind: 'ip',
    raw: '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1',
    expected: { kind: 'ip', key: '2001:db8:aaaa:bbbb:cccc:dddd:eeee:1', parents: [{ kind: 'network', key: '2001:db8:aaaa:bbbb::/64' }] },
  },
  {
    kind: 'ip',
    raw: '::ffff:192.0.2.7',
    expected: { kind: 'ip', key: '192.0.2.7', parents: [{ kind: 'network', key: '192.0.2.0/24' }] },
  },
  {
    kind: 'ip',
    raw: '[2001:DB8::A]',
    expected: { kind: 'ip', key: '2001:db8::a', parents: [{ kind: 'network', key: '2001:db8::/64' }] },
  },
  { kind: 'network', raw: '192.0.2.77/28', expected: { kind: 'network', key: '192.0.2.0/24', parents: [] } },
  { kind: 'network', raw: '10.1.0.0/16', expected: { kind: 'network', key: '10.1.0.0/16', parents: [] } },
  { kind: 'network', raw: '10.1.2.3/16', expected: { kind: 'network', key: '10.1.0.0/16', parents: [] } },
  { kind: 'network', raw: '0.0.0.0/0', expected: { kind: 'network', key: '0.0.0.0/0', parents: [] } },
  { kind: 'network', raw: '2001:db8:1:2:3::/80', expected: { kind: 'network', key: '2001:db8:1:2::/64', parents: [] } },
  { kind: 'network', raw: '2001:DB8:1::/48', expected: { kind: 'network', key: '2001:db8:1::/48', parents: [] } },
  { kind: 'network', raw: '[2001:db8::]/32', expected: { kind: 'network', key: '2001:db8::/32', parents: [] } },
  { kind: 'network', raw: '192.0.2.77', expected: { kind: 'network', key: '192.0.2.0/24', parents: [] } },
  { kind: 'network', raw: '2001:db8::1', expected: { kind: 'network', key: '2001:db8::/64', parents: [] } },
  { kind: 'network', raw: '::ffff:192.0.2.0/120', expected: { kind: 'network', key: '192.0.2.0/24', parents: [] } },
  { kind: 'network', raw: '::ffff:10.0.0.0/104', expected: { kind: 'network', key: '10.0.0.0/8', parents: [] } },
  {
    kind: 'domain',
    raw: 'Mail.Example.COM.',
    expected: { kind: 'domain', key: 'mail.example.com', parents: [{ kind: 'domain', key: 'example.com' }] },
  },
  { kind: 'domain', raw: 'example.co.uk', expected: { kind: 'domain', key: 'example.co.uk', parents: [] } },
  {
    kind: 'domain',
    raw: 'a.b.example.co.uk',
    expected: { kind: 'domain', key: 'a.b.example.co.uk', parents: [{ kind: 'domain', key: 'example.co.uk' }] },
  },
  {
    kind: 'domain',
    raw: 'www.bücher.example',
    expected: { kind: 'domain', key: 'www.xn--bcher-kva.example', parents: [{ kind: 'domain', key: 'xn--bcher-kva.example' }] },
  },
  { kind: 'domain', raw: 'a'.repeat(63) + '.com', expected: { kind: 'domain', key: 'a'.repeat(63) + '.com', parents: [] } },
  { kind: 'user', raw: 'Alice@Example.COM', expected: { kind: 'user', key: 'alice@example.com', parents: [] } },
  { kind: 'user', raw: 'Bob.Smith+tag@Mail.Example.COM.', expected: { kind: 'user', key: 'bob.smith+tag@mail.example.com', parents: [] } },
  { kind: 'user', raw: 'info@bücher.example', expected: { kind: 'user', key: 'info@xn--bcher-kva.example', parents: [] } },
];

for (const { kind, raw, expected } of valid) {
  test(`${kind} key ${JSON.stringify(raw)} normalised`, (t) => {
    t.deepEqual(normaliseKey(kind, raw), expected);
  });
}

test('canonical IPv4 keys match ipaddr.js', (t) => {
  // Every combination of octets at the edges of the one-, two- and three-digit forms, compared with
  // what ipaddr.js makes of the same text.
  const octets = [0, 1, 9, 10, 99, 100, 199, 200, 249, 250, 255];
  let compared = 0;
  for (const a of octets) {
    for (const b of octets) {
      for (const c of octets) {
        for (const d of octets) {
          const text = `${a}.${b}.${c}.${d}`;
          const parsed = ipaddr.IPv4.parse(text).octets;
          const expected = { kind: 'ip', key: parsed.join('.'), parents: [{ kind: 'network', key: `${parsed.slice(0, 3).join('.')}.0/24` }] };
          const actual = normaliseKey('ip', text);
          if (JSON.stringify(actual) !== JSON.stringify(expected)) {
            t.deepEqual(actual, expected, text);
            return;
          }
          compared += 1;
        }
      }
    }
  }
  t.is(compared, octets.length ** 4);
});

test('IPv4 spellings with leading zeros or spaces normalise alike', (t) => {
  const canonical = normaliseKey('ip', '192.0.2.1');
  for (const spelling of [' 192.0.2.1', '192.0.2.1 ', '[192.0.2.1]', '::ffff:192.0.2.1']) {
    t.deepEqual(normaliseKey('ip', spelling), canonical, spelling);
  }
  t.truthy(keyError('ip', '256.0.2.1'));
  t.truthy(keyError('ip', '192.0.2'));
});

/** Four labels of 63, 63, 63 and 57 characters with ".com": exactly 253 characters. */
const DOMAIN_OF_253 = `${'a'.repeat(63)}.${'b'.repeat(63)}.${'c'.repeat(63)}.${'d'.repeat(57)}.com`;

test('domain of 253 characters accepted', (t) => {
  t.is(DOMAIN_OF_253.length, 253);
  t.deepEqual(normaliseKey('domain', DOMAIN_OF_253), {
    kind: 'domain',
    key: DOMAIN_OF_253,
    parents: [{ kind: 'domain', key: `${'d'.repeat(57)}.com` }],
  });
});

const invalid: { kind: ObjectKindName; raw: string; why: string }[] = [
  { kind: 'ip', raw: '999.1.1.1', why: 'octet above 255' },
  { kind: 'ip', raw: '127.1', why: 'two-part IPv4 shorthand' },
  { kind: 'ip', raw: '0x7f.0.0.1', why: 'hexadecimal octet' },
  { kind: 'ip', raw: '2130706433', why: 'IPv4 as one decimal number' },
  { kind: 'ip', raw: 'fe80::1%eth0', why: 'IPv6 zone id' },
  { kind: 'ip', raw: '2001:db8::1::2', why: 'two "::" in IPv6' },
  { kind: 'ip', raw: 'example.com', why: 'domain as an address' },
  { kind: 'network', raw: '192.0.2.0/33', why: 'IPv4 prefix above 32' },
  { kind: 'network', raw: '2001:db8::/129', why: 'IPv6 prefix above 128' },
  { kind: 'network', raw: '::ffff:0:0/95', why: 'IPv4-mapped prefix shorter than /96' },
  { kind: 'network', raw: '192.0.2.0/', why: 'empty prefix' },
  { kind: 'network', raw: '192.0.2.0/-1', why: 'negative prefix' },
  { kind: 'domain', raw: 'com', why: 'public suffix' },
  { kind: 'domain', raw: 'co.uk', why: 'two-label public suffix' },
  { kind: 'domain', raw: '1.2.3.4', why: 'IPv4 address' },
  { kind: 'domain', raw: 'exa mple.com', why: 'space inside' },
  { kind: 'domain', raw: 'a'.repeat(64) + '.com', why: 'label of 64 characters' },
  { kind: 'domain', raw: `e${DOMAIN_OF_253}`, why: 'name of 254 characters' },
  { kind: 'domain', raw: `${'a'.repeat(63)}.`.repeat(4) + 'com', why: 'name of 259 characters' },
  { kind: 'domain', raw: 'example..com', why: 'empty label' },
  { kind: 'domain', raw: '-example.com', why: 'label starting with a hyphen' },
  { kind: 'domain', raw: 'example.com/path', why: 'URL path' },
  { kind: 'user', raw: 'no-at-sign', why: 'no "@"' },
  { kind: 'user', raw: '@example.com', why: 'empty local part' },
  { kind: 'user', raw: 'user@', why: 'empty domain' },
  { kind: 'user', raw: 'a..b@example.com', why: 'two dots in a row' },
  { kind: 'user', raw: '.a@example.com', why: 'leading dot in local part' },
  { kind: 'user', raw: 'a b@example.com', why: 'space in local part' },
  { kind: 'user', raw: `${'l'.repeat(65)}@example.com`, why: 'local part of 65 characters' },
  { kind: 'user', raw: 'x@co.uk', why: 'domain is a public suffix' },
  { kind: 'ip', raw: '', why: 'empty ip' },
  { kind: 'network', raw: '', why: 'empty network' },
  { kind: 'domain', raw: '', why: 'empty domain' },
  { kind: 'user', raw: '', why: 'empty user' },
  { kind: 'domain', raw: 'a'.repeat(600), why: '600 characters' },
  { kind: 'user', raw: `${'a'.repeat(590)}@example.com`, why: 'user of 602 characters' },
];

for (const { kind, raw, why } of invalid) {
  test(`${kind} key rejected: ${why}`, (t) => {
    const error = keyError(kind, raw);

    t.is(error?.code, 'ERR_KEY_INVALID');
    t.is(error?.details['kind'], kind);
  });
}

test('user key rejected: unquoted "@" in local part', (t) => {
  t.is(keyError('user', 'a@b@example.com')?.code, 'ERR_KEY_INVALID');
});

/** One `input expected` line of the Public Suffix List project's tests.txt. */
interface PslCase {
  line: number;
  input: string;
  expected: string | null;
}

/**
 * Reads tests.txt: `//` starts a comment line, and every other non-empty line is the input and the
 * expected registrable domain separated by a space, with `null` for no input or no registrable domain.
 */
function readPslCases(): PslCase[] {
  const cases: PslCase[] = [];
  const lines = readFileSync(PSL_TESTS, 'utf8').split('\n');

  for (const [index, line] of lines.entries()) {
    const text = line.trim();
    if (text === '' || text.startsWith('//')) {
      continue;
    }
    const fields = text.split(' ');
    if (fields.length !== 2) {
      throw new Error(`${PSL_TESTS}:${index + 1}: expected "input expected", got ${JSON.stringify(line)}`);
    }
    const [input, expected] = fields as [string, string];
    if (input === 'null') {
      continue;
    }
    cases.push({ line: index + 1, input, expected: expected === 'null' ? null : expected });
  }
  return cases;
}

test('Public Suffix List test cases', (t) => {
  const cases = readPslCases();
  // The file has 77 cases with a non-null input, so a smaller count means the parser skipped lines.
  t.is(cases.length, 77);

  for (const { line, input, expected } of cases) {
    let registrable: string | null;
    try {
      const normalised = normaliseKey('domain', input);
      registrable = normalised.parents[0]?.key ?? normalised.key;
    } catch (error) {
      if (!(error instanceof CdrError) || error.code !== 'ERR_KEY_INVALID') throw error;
      registrable = null;
    }

    // Keys are stored in IDNA form, so IDN expectations such as "食狮.中国" compare as punycode.
    const expectedKey = expected === null ? null : domainToASCII(expected);
    t.is(registrable, expectedKey, `tests.txt:${line}: ${input}`);
  }
});
