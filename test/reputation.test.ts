import test from 'ava';

import { COUNTER_FIELDS, type CounterField, type CounterValues } from '../modules/protocol/counters.js';
import type { VerdictName } from '../modules/protocol/constants.js';
import { CdrError } from '../services/common/errors.js';
import {
  computeReputation,
  DEFAULT_POLICY_YAML,
  parsePolicy,
  verdictOf,
  type BucketCounters,
  type PolicyDocument,
} from '../services/repository/reputation.js';

const BUCKET_SECONDS = 3600;
/** Evaluation time in Unix milliseconds. It is a whole second, so the bucket ages below are exact. */
const NOW_MS = 1_750_000_000_000;

const policy = parsePolicy(DEFAULT_POLICY_YAML, 'default policy');
const HALF_LIFE_SECONDS = policy.halfLifeHours * 3600;

/**
 * A small valid policy whose line numbers the error cases below refer to. Each case replaces one line
 * and keeps the others in place.
 */
const BASE_POLICY_LINES = [
  'version: 3', // line 1
  'halfLifeHours: 72', // line 2
  'minMessages: 5', // line 3
  'fullConfidenceMessages: 50', // line 4
  'weights:', // line 5
  '  ham: 60', // line 6
  '  spam: -90', // line 7
  'thresholds:', // line 8
  '  trusted: 40', // line 9
  '  suspect: -20', // line 10
  '  malicious: -60', // line 11
  'ttlSeconds:', // line 12
  '  trusted: 3600', // line 13
  '  neutral: 300', // line 14
  '  suspect: 600', // line 15
  '  malicious: 1800', // line 16
];

/** Returns the base policy with line `line` (1-based) replaced by `text`, or removed when `text` is null. */
function policyWith(line: number, text: string | null): string {
  const lines = [...BASE_POLICY_LINES];
  if (text === null) {
    lines.splice(line - 1, 1);
  } else {
    lines[line - 1] = text;
  }
  return lines.join('\n') + '\n';
}

/** Returns the CdrError that parsing `yamlText` throws, or undefined when it parses. */
function policyError(yamlText: string): CdrError | undefined {
  try {
    parsePolicy(yamlText, 'policy.yaml');
    return undefined;
  } catch (error) {
    if (error instanceof CdrError) return error;
    throw error;
  }
}

/** Builds a counter vector in COUNTER_FIELDS order with the given fields set and the rest zero. */
function vector(values: Partial<CounterValues>): number[] {
  return COUNTER_FIELDS.map((field) => values[field] ?? 0);
}

/** Builds a bucket whose middle is `ageSeconds` before NOW_MS, so its counters weigh 0.5^(age / half-life). */
function bucketAged(ageSeconds: number, values: Partial<CounterValues>): BucketCounters {
  return { startSeconds: NOW_MS / 1000 - ageSeconds - BUCKET_SECONDS / 2, vector: vector(values) };
}

function reputationOf(buckets: BucketCounters[], under: PolicyDocument = policy) {
  return computeReputation(under, buckets, BUCKET_SECONDS, NOW_MS);
}

const SPAM_100 = { messages: 100, rcptAccepted: 100, spam: 100 };
const AUTHENTICATED_HAM_100 = { messages: 100, rcptAccepted: 100, ham: 100, spfPass: 100, dkimPass: 100, dmarcPass: 100 };

test('default policy parses to version 1', (t) => {
  t.is(policy.version, 1);
  t.is(policy.halfLifeHours, 72);
  t.is(policy.minMessages, 5);
  t.is(policy.fullConfidenceMessages, 50);
  t.deepEqual(policy.thresholds, { trusted: 40, suspect: -20, malicious: -60 });
  t.deepEqual(policy.ttlSeconds, { trusted: 3600, neutral: 300, suspect: 600, malicious: 1800 });
  t.is(policy.weights.spam, -90);
});

test('base policy of these tests parses', (t) => {
  const base = parsePolicy(BASE_POLICY_LINES.join('\n'), 'policy.yaml');

  t.is(base.version, 3);
  t.deepEqual(base.weights, { ham: 60, spam: -90 });
});

/** Bad policies. `at` is the line and column of the offending key or value, and `text` part of the message. */
const badPolicies = [
  { name: 'unclosed flow sequence', yaml: policyWith(7, '  spam: [-90'), code: 'ERR_POLICY_PARSE', at: '8:1', text: 'Flow sequence' },
  { name: 'duplicate key', yaml: policyWith(7, '  ham: -90'), code: 'ERR_POLICY_PARSE', at: '7:3', text: 'key "weights.ham" appears twice' },
  { name: 'unknown weight', yaml: policyWith(7, '  spamm: -90'), code: 'ERR_POLICY_INVALID', at: '7:3', text: 'unknown key "weights.spamm"; expected one of: ham, spam,' },
  { name: 'unknown top-level key', yaml: policyWith(3, 'minMessage: 5'), code: 'ERR_POLICY_INVALID', at: '3:1', text: 'unknown key "minMessage"' },
  { name: 'weight below -1000', yaml: policyWith(7, '  spam: -1001'), code: 'ERR_POLICY_INVALID', at: '7:9', text: 'weights.spam must be a number from -1000 to 1000, got -1001' },
  { name: 'weight above 1000', yaml: policyWith(6, '  ham: 1000.5'), code: 'ERR_POLICY_INVALID', at: '6:8', text: 'weights.ham must be a number from -1000 to 1000, got 1000.5' },
  { name: 'weight as a string', yaml: policyWith(6, '  ham: high'), code: 'ERR_POLICY_INVALID', at: '6:8', text: 'weights.ham must be a number from -1000 to 1000, got "high"' },
  { name: 'version 0', yaml: policyWith(1, 'version: 0'), code: 'ERR_POLICY_INVALID', at: '1:10', text: 'version must be an integer from 1 to 4294967295, got 0' },
  { name: 'threshold above 100', yaml: policyWith(9, '  trusted: 101'), code: 'ERR_POLICY_INVALID', at: '9:12', text: 'thresholds.trusted must be an integer from -100 to 100, got 101' },
  { name: 'negative ttl', yaml: policyWith(14, '  neutral: -1'), code: 'ERR_POLICY_INVALID', at: '14:12', text: 'ttlSeconds.neutral must be an integer from 0 to 604800, got -1' },
] as const;

for (const bad of badPolicies) {
  test(`policy rejected: ${bad.name}`, (t) => {
    const error = policyError(bad.yaml);

    t.is(error?.code, bad.code);
    t.true(error?.message.startsWith(`policy.yaml:${bad.at}: `), `message does not start with the position: ${error?.message}`);
    t.true(error?.message.includes(bad.text), `message does not say "${bad.text}": ${error?.message}`);
    t.is(`${error?.details['line']}:${error?.details['column']}`, bad.at);
  });
}

test('policy without version rejected', (t) => {
  const error = policyError(policyWith(1, null));

  t.is(error?.code, 'ERR_POLICY_INVALID');
  t.is(error?.details['keyword'], 'required');
});

test('missing version error names the key', (t) => {
  const error = policyError(policyWith(1, null));

  t.regex(error?.message ?? '', /\bversion\b/);
  t.notRegex(error?.message ?? '', /must be a mapping/);
});

test('halfLifeHours 0 error gives the bound', (t) => {
  const error = policyError(policyWith(2, 'halfLifeHours: 0'));

  t.is(error?.code, 'ERR_POLICY_INVALID');
  t.regex(error?.message ?? '', /halfLifeHours must be a number (greater than|above) 0/);
});

const thresholdCases = [
  { name: 'suspect above trusted', line: 10, text: '  suspect: 50', accepted: false },
  { name: 'suspect equal to trusted', line: 10, text: '  suspect: 40', accepted: false },
  { name: 'suspect below malicious', line: 10, text: '  suspect: -61', accepted: false },
  { name: 'malicious above trusted', line: 11, text: '  malicious: 45', accepted: false },
  { name: 'suspect equal to malicious', line: 10, text: '  suspect: -60', accepted: true },
  { name: 'suspect just below trusted', line: 10, text: '  suspect: 39', accepted: true },
] as const;

for (const { name, line, text, accepted } of thresholdCases) {
  test(`thresholds ${accepted ? 'accepted' : 'rejected'}: ${name}`, (t) => {
    const error = policyError(policyWith(line, text));

    if (accepted) {
      t.is(error, undefined);
    } else {
      t.is(error?.code, 'ERR_POLICY_INVALID');
      t.is(error?.details['key'], 'thresholds');
      t.regex(error?.message ?? '', /malicious <= suspect < trusted/);
    }
  });
}

test('threshold order error gives its line', (t) => {
  const error = policyError(policyWith(10, '  suspect: 50'));

  t.is(typeof error?.details['line'], 'number');
  t.regex(error?.message ?? '', /^policy\.yaml:\d+:\d+: /);
});

test('weights of -1000 and 1000 accepted', (t) => {
  const extreme = parsePolicy(policyWith(6, '  ham: 1000').replace('  spam: -90', '  spam: -1000'), 'policy.yaml');

  t.is(extreme.weights.ham, 1000);
  t.is(extreme.weights.spam, -1000);
});

test('counters are exact sums of buckets', (t) => {
  const first = Object.fromEntries(COUNTER_FIELDS.map((field, index) => [field, index + 1])) as CounterValues;
  const second = Object.fromEntries(COUNTER_FIELDS.map((field, index) => [field, 100 * (index + 1)])) as CounterValues;
  const third = { messages: 7, spam: 3, complaints: 2 };
  const buckets = [bucketAged(0, first), bucketAged(5 * HALF_LIFE_SECONDS, second), bucketAged(40 * 86_400, third)];

  const result = reputationOf(buckets);

  const expected = {} as Record<CounterField, number>;
  for (const [index, field] of COUNTER_FIELDS.entries()) {
    expected[field] = 101 * (index + 1);
  }
  expected.messages += 7;
  expected.spam += 3;
  expected.complaints += 2;
  t.deepEqual(result.counters, expected);
  t.is(result.counters.messages, 202 + 7);
});

test('no buckets give neutral with zero counters', (t) => {
  const result = reputationOf([]);

  t.is(result.score, 0);
  t.is(result.verdict, 'neutral');
  t.deepEqual(result.reasons, ['insufficient data: 0 decayed messages, policy needs 5']);
  t.is(result.counters.messages, 0);
});

test('100 fresh spam messages are malicious', (t) => {
  const result = reputationOf([bucketAged(0, SPAM_100)]);

  t.is(result.score, -90);
  t.is(result.verdict, 'malicious');
  t.deepEqual(result.reasons, ['spam ratio 1.00 (-90)']);
  t.is(result.ttlSeconds, 1800);
  t.is(result.policyVersion, 1);
});

test('100 authenticated ham messages are trusted', (t) => {
  const result = reputationOf([bucketAged(0, AUTHENTICATED_HAM_100)]);

  t.is(result.score, 95);
  t.is(result.verdict, 'trusted');
  t.deepEqual(result.reasons, ['ham ratio 1.00 (+60)', 'dmarcPass ratio 1.00 (+15)', 'spfPass ratio 1.00 (+10)', 'dkimPass ratio 1.00 (+10)']);
  t.is(result.ttlSeconds, 3600);
});

test('3 messages give insufficient data', (t) => {
  const result = reputationOf([bucketAged(0, { messages: 3, rcptAccepted: 3, spam: 3 })]);

  t.is(result.verdict, 'neutral');
  t.is(result.reasons[0], 'insufficient data: 3 decayed messages, policy needs 5');
  // 3 of 50 messages scale the -90 of spam to -5.4.
  t.is(result.score, -5);
  t.is(result.reasons.at(-1), 'evidence 3 of 50 messages scales the score by 0.06');
  t.is(result.ttlSeconds, 300);
});

test('spam two half-lives old counts a quarter', (t) => {
  const result = reputationOf([bucketAged(2 * HALF_LIFE_SECONDS, SPAM_100)]);

  // 25 decayed messages: half of full confidence, so -90 becomes -45.
  t.is(result.score, -45);
  t.is(result.verdict, 'suspect');
  t.deepEqual(result.reasons, ['spam ratio 1.00 (-45)', 'evidence 25 of 50 messages scales the score by 0.50']);
  t.is(result.counters.spam, 100);
});

test('spam ten half-lives old is insufficient', (t) => {
  const result = reputationOf([bucketAged(10 * HALF_LIFE_SECONDS, SPAM_100)]);

  // 100 / 1024 = 0.098 decayed messages, below minMessages and shown rounded down.
  t.is(result.verdict, 'neutral');
  t.is(result.reasons[0], 'insufficient data: 0.0 decayed messages, policy needs 5');
  t.is(result.counters.spam, 100);
});

test('old spam outweighed by fresh ham', (t) => {
  const ham = bucketAged(0, { messages: 100, ham: 100 });
  const spam = { messages: 200, spam: 200 };

  const fresh = reputationOf([ham, bucketAged(0, spam)]);
  // ham 1/3 of 60 plus spam 2/3 of -90.
  t.is(fresh.score, -40);
  t.is(fresh.verdict, 'suspect');

  const aged = reputationOf([ham, bucketAged(10 * HALF_LIFE_SECONDS, spam)]);
  // The spam decays to 200 / 1024 messages: ham ratio 0.998 gives 59.88, spam ratio 0.002 gives -0.18.
  t.is(aged.score, 60);
  t.is(aged.verdict, 'trusted');
  t.deepEqual(aged.counters, fresh.counters);
});

test('bucket in the future is not decayed', (t) => {
  const result = reputationOf([bucketAged(-3600, SPAM_100)]);

  t.is(result.score, -90);
  t.deepEqual(result.reasons, ['spam ratio 1.00 (-90)']);
});

test('score clamped for extreme weights', (t) => {
  const extreme = parsePolicy(policyWith(6, '  ham: 1000').replace('  spam: -90', '  spam: -1000'), 'policy.yaml');

  const negative = reputationOf([bucketAged(0, SPAM_100)], extreme);
  t.is(negative.score, -100);
  t.is(negative.verdict, 'malicious');
  t.deepEqual(negative.reasons, ['spam ratio 1.00 (-1000)']);

  const positive = reputationOf([bucketAged(0, { messages: 100, ham: 100 })], extreme);
  t.is(positive.score, 100);
  t.is(positive.verdict, 'trusted');
});

test('ratio above 1 counts as 1', (t) => {
  // More spam verdicts than messages: the ratio is capped at 1, so the score stays at the full weight.
  const result = reputationOf([bucketAged(0, { messages: 100, spam: 250 })]);

  t.is(result.score, -90);
  t.deepEqual(result.reasons, ['spam ratio 1.00 (-90)']);
});

const ttlCases: { verdict: VerdictName; buckets: BucketCounters[]; ttlSeconds: number }[] = [
  { verdict: 'trusted', buckets: [bucketAged(0, AUTHENTICATED_HAM_100)], ttlSeconds: 3600 },
  { verdict: 'neutral', buckets: [bucketAged(0, { messages: 3, ham: 3 })], ttlSeconds: 300 },
  { verdict: 'suspect', buckets: [bucketAged(2 * HALF_LIFE_SECONDS, SPAM_100)], ttlSeconds: 600 },
  { verdict: 'malicious', buckets: [bucketAged(0, SPAM_100)], ttlSeconds: 1800 },
];

for (const { verdict, buckets, ttlSeconds } of ttlCases) {
  test(`ttl of a ${verdict} verdict`, (t) => {
    const result = reputationOf(buckets);

    t.is(result.verdict, verdict);
    t.is(result.ttlSeconds, ttlSeconds);
  });
}

const verdictBounds: { score: number; verdict: VerdictName }[] = [
  { score: 100, verdict: 'trusted' },
  { score: 40, verdict: 'trusted' },
  { score: 39, verdict: 'neutral' },
  { score: 0, verdict: 'neutral' },
  { score: -19, verdict: 'neutral' },
  { score: -20, verdict: 'suspect' },
  { score: -59, verdict: 'suspect' },
  { score: -60, verdict: 'malicious' },
  { score: -100, verdict: 'malicious' },
];

for (const { score, verdict } of verdictBounds) {
  test(`verdictOf score ${score}`, (t) => {
    t.is(verdictOf(policy, score), verdict);
  });
}
