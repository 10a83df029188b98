/**
 * The reputation policy document: its JSON Schema and the policy in force on a new index.
 */

const weight = { type: 'number', minimum: -1000, maximum: 1000 };
const seconds = { type: 'integer', minimum: 0, maximum: 604_800 };
const score = { type: 'integer', minimum: -100, maximum: 100 };

/** Signals a policy can weigh; each is a ratio from 0 to 1 (see `reputation.ts`). */
export const POLICY_SIGNALS = [
  'ham',
  'spam',
  'virus',
  'phish',
  'bulk',
  'complaints',
  'rcptRejected',
  'rcptUnknown',
  'spfPass',
  'spfFail',
  'dkimPass',
  'dkimFail',
  'dmarcPass',
  'dmarcFail',
] as const;

export type PolicySignal = (typeof POLICY_SIGNALS)[number];

/** A checked reputation policy. */
export interface PolicyDocument {
  version: number;
  description?: string;
  /** Age at which an observation counts half, in hours. */
  halfLifeHours: number;
  /** Decayed messages below which the verdict stays neutral. */
  minMessages: number;
  /** Decayed messages at which the evidence counts fully; fewer scale the score down linearly. */
  fullConfidenceMessages: number;
  /** Score points at a ratio of 1 of each signal. */
  weights: Partial<Record<PolicySignal, number>>;
  /** Score bounds of the verdicts: trusted at or above, suspect and malicious at or below. */
  thresholds: { trusted: number; suspect: number; malicious: number };
  /** Time an IMP may cache an answer, per verdict, in seconds. */
  ttlSeconds: { trusted: number; neutral: number; suspect: number; malicious: number };
  /** Score points added when a feed of that category (a feed's `category`) lists the object. */
  listingWeights?: Record<string, number>;
}

export const POLICY_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['version', 'halfLifeHours', 'minMessages', 'fullConfidenceMessages', 'weights', 'thresholds', 'ttlSeconds'],
  properties: {
    version: { type: 'integer', minimum: 1, maximum: 4_294_967_295 },
    description: { type: 'string', maxLength: 1000 },
    halfLifeHours: { type: 'number', exclusiveMinimum: 0, maximum: 87_600 },
    minMessages: { type: 'number', minimum: 0, maximum: 1_000_000 },
    fullConfidenceMessages: { type: 'number', exclusiveMinimum: 0, maximum: 1_000_000 },
    weights: {
      type: 'object',
      additionalProperties: false,
      properties: Object.fromEntries(POLICY_SIGNALS.map((signal) => [signal, weight])),
    },
    thresholds: {
      type: 'object',
      additionalProperties: false,
      required: ['trusted', 'suspect', 'malicious'],
      properties: { trusted: score, suspect: score, malicious: score },
    },
    ttlSeconds: {
      type: 'object',
      additionalProperties: false,
      required: ['trusted', 'neutral', 'suspect', 'malicious'],
      properties: { trusted: seconds, neutral: seconds, suspect: seconds, malicious: seconds },
    },
    listingWeights: {
      type: 'object',
      propertyNames: { pattern: '^[a-z][a-z0-9_-]{0,31}$' },
      maxProperties: 64,
      additionalProperties: weight,
    },
  },
};

/** The policy a new index starts with, as an administrator would write it. */
export const DEFAULT_POLICY_YAML = `# IMP-CDR reputation policy.
# Each weight is the score change when its signal's ratio is 1 (for example every message was spam).
# Verdict ratios are over messages, recipient ratios over recipients, and authentication ratios over
# the results of that method. The sum is scaled by the evidence (decayed messages divided by
# fullConfidenceMessages, at most 1) and clamped to -100..100.
version: 1
description: Embedded default policy
halfLifeHours: 72
minMessages: 5
fullConfidenceMessages: 50
weights:
  ham: 60
  spam: -90
  virus: -120
  phish: -120
  bulk: -10
  complaints: -100
  rcptRejected: -20
  rcptUnknown: -60
  spfPass: 10
  spfFail: -30
  dkimPass: 10
  dkimFail: -20
  dmarcPass: 15
  dmarcFail: -40
thresholds:
  trusted: 40
  suspect: -20
  malicious: -60
ttlSeconds:
  trusted: 3600
  neutral: 300
  suspect: 600
  malicious: 1800
# Score change when a feed of that category lists the object (each feed names its category).
listingWeights:
  block: -80
  suspect: -30
  allow: 40
`;
