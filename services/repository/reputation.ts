/**
 * Reputation: the policy document and the score, verdict and reasons computed from an object's counters.
 */

import { CdrError } from '../common/errors.js';
import { parseYamlWithSchema, positionOfKey } from '../common/yaml-schema.js';
import { COUNTER_FIELDS, vectorToCounters, type CounterField, type CounterValues } from '../../modules/protocol/counters.js';
import type { VerdictName } from '../../modules/protocol/constants.js';
import { POLICY_SCHEMA, POLICY_SIGNALS, type PolicyDocument, type PolicySignal } from './policy-schema.js';

export type { PolicyDocument } from './policy-schema.js';
export { DEFAULT_POLICY_YAML } from './policy-schema.js';

/** The counters of one object in one time bucket, summed over every node's slot. */
export interface BucketCounters {
  /** Start of the bucket, Unix time in seconds. */
  startSeconds: number;
  vector: number[];
}

/** What a lookup returns for one object, before the wire encoding. */
export interface ReputationResult {
  score: number;
  verdict: VerdictName;
  reasons: string[];
  /** Totals over the retention window, not decayed. */
  counters: CounterValues;
  ttlSeconds: number;
  policyVersion: number;
}

/**
 * Parses and checks a policy document.
 *
 * @throws CdrError `ERR_POLICY_PARSE`, `ERR_POLICY_INVALID` (also for thresholds out of order), with the
 *   key and line
 */
export function parsePolicy(yamlText: string, sourceName: string): PolicyDocument {
  const policy = parseYamlWithSchema(yamlText, sourceName, POLICY_SCHEMA, {
    parse: 'ERR_POLICY_PARSE',
    invalid: 'ERR_POLICY_INVALID',
    unknownKey: 'ERR_POLICY_INVALID',
  }) as PolicyDocument;

  const { trusted, suspect, malicious } = policy.thresholds;
  if (!(malicious <= suspect && suspect < trusted)) {
    const position = positionOfKey(yamlText, ['thresholds']);
    throw new CdrError(
      'ERR_POLICY_INVALID',
      `${sourceName}:${position.line}:${position.col}: thresholds must satisfy malicious <= suspect < trusted, ` +
        `got malicious=${malicious}, suspect=${suspect}, trusted=${trusted}`,
      { details: { key: 'thresholds', line: position.line, column: position.col } },
    );
  }
  return policy;
}

const VERDICT_SIGNALS: PolicySignal[] = ['ham', 'spam', 'virus', 'phish', 'bulk', 'complaints'];
const RECIPIENT_SIGNALS: PolicySignal[] = ['rcptRejected', 'rcptUnknown'];
const AUTH_METHODS = ['spf', 'dkim', 'dmarc'] as const;

/**
 * Computes the reputation of one object from its buckets under `policy` at time `nowMs`.
 *
 * Each bucket's counters are weighted by 0.5^(age / half-life), with the age taken from the middle of
 * the bucket. Signals are ratios of the decayed counters: verdicts over messages, recipient outcomes
 * over recipients, each authentication result over all results of that method. The score is the sum
 * of weight x ratio, scaled by min(1, messages / fullConfidenceMessages), rounded and clamped to
 * -100..100. Below `minMessages` decayed messages the verdict stays neutral.
 */
export function computeReputation(
  policy: PolicyDocument,
  buckets: readonly BucketCounters[],
  bucketSeconds: number,
  nowMs: number,
): ReputationResult {
  const totals = new Array<number>(COUNTER_FIELDS.length).fill(0);
  const decayed = new Array<number>(COUNTER_FIELDS.length).fill(0);
  const halfLifeSeconds = policy.halfLifeHours * 3600;

  for (const bucket of buckets) {
    const ageSeconds = Math.max(0, nowMs / 1000 - (bucket.startSeconds + bucketSeconds / 2));
    const factor = 0.5 ** (ageSeconds / halfLifeSeconds);
    bucket.vector.forEach((value, index) => {
      totals[index]! += value;
      decayed[index]! += value * factor;
    });
  }

  const counters = vectorToCounters(totals);
  const weighted = vectorToCounters(decayed);
  const messages = weighted.messages;
  const contributions = signalRatios(weighted)
    .map(({ signal, ratio }) => ({ signal, ratio, points: (policy.weights[signal] ?? 0) * ratio }))
    .filter(({ points }) => points !== 0);

  const confidence = Math.min(1, messages / policy.fullConfidenceMessages);
  const rawScore = contributions.reduce((sum, { points }) => sum + points, 0) * confidence;
  const score = Math.max(-100, Math.min(100, Math.round(rawScore)));

  const reasons: string[] = [];
  let verdict: VerdictName;
  if (messages < policy.minMessages) {
    verdict = 'neutral';
    reasons.push(`insufficient data: ${formatNumber(messages)} decayed messages, policy needs ${policy.minMessages}`);
  } else {
    verdict = verdictOf(policy, score);
  }

  const ranked = contributions
    .map((entry) => ({ ...entry, scaled: entry.points * confidence }))
    .filter(({ scaled }) => Math.abs(scaled) >= 0.5)
    .sort((a, b) => Math.abs(b.scaled) - Math.abs(a.scaled));
  for (const { signal, ratio, scaled } of ranked) {
    const sign = scaled > 0 ? '+' : '';
    reasons.push(`${signal} ratio ${ratio.toFixed(2)} (${sign}${Math.round(scaled)})`);
  }
  if (confidence < 1 && messages > 0) {
    reasons.push(`evidence ${formatNumber(messages)} of ${policy.fullConfidenceMessages} messages scales the score by ${confidence.toFixed(2)}`);
  }

  return {
    score,
    verdict,
    reasons,
    counters,
    ttlSeconds: policy.ttlSeconds[verdict],
    policyVersion: policy.version,
  };
}

/** Maps a score to its verdict under the policy's thresholds. */
export function verdictOf(policy: PolicyDocument, score: number): VerdictName {
  if (score <= policy.thresholds.malicious) {
    return 'malicious';
  }
  if (score <= policy.thresholds.suspect) {
    return 'suspect';
  }
  if (score >= policy.thresholds.trusted) {
    return 'trusted';
  }
  return 'neutral';
}

function signalRatios(decayed: CounterValues): { signal: PolicySignal; ratio: number }[] {
  const ratios: { signal: PolicySignal; ratio: number }[] = [];
  const ratio = (part: number, whole: number) => (whole > 0 ? Math.min(1, part / whole) : 0);

  for (const signal of VERDICT_SIGNALS) {
    ratios.push({ signal, ratio: ratio(decayed[signal as CounterField], decayed.messages) });
  }

  const recipients = decayed.rcptAccepted + decayed.rcptRejected + decayed.rcptUnknown;
  for (const signal of RECIPIENT_SIGNALS) {
    ratios.push({ signal, ratio: ratio(decayed[signal as CounterField], recipients) });
  }

  for (const method of AUTH_METHODS) {
    const pass = decayed[`${method}Pass`];
    const fail = decayed[`${method}Fail`];
    const results = pass + fail + decayed[`${method}None`];
    ratios.push({ signal: `${method}Pass`, ratio: ratio(pass, results) });
    ratios.push({ signal: `${method}Fail`, ratio: ratio(fail, results) });
  }

  return ratios.filter(({ signal }) => POLICY_SIGNALS.includes(signal));
}

/** Formats a decayed count with one decimal, rounded down, so that a count below a limit never prints as the limit. */
function formatNumber(value: number): string {
  return Number.isInteger(value) ? String(value) : (Math.floor(value * 10) / 10).toFixed(1);
}
