/**
 * The counter fields of an observation, in the order of the `Counters` message. The index stores a
 * counter vector as a plain array in this order.
 */

export const COUNTER_FIELDS = [
  'connections',
  'messages',
  'rcptAccepted',
  'rcptRejected',
  'rcptUnknown',
  'ham',
  'spam',
  'virus',
  'phish',
  'bulk',
  'spfPass',
  'spfFail',
  'spfNone',
  'dkimPass',
  'dkimFail',
  'dkimNone',
  'dmarcPass',
  'dmarcFail',
  'dmarcNone',
  'complaints',
] as const;

export type CounterField = (typeof COUNTER_FIELDS)[number];

/** Named counter values; every field is present. */
export type CounterValues = Record<CounterField, number>;

export function zeroCounters(): CounterValues {
  return Object.fromEntries(COUNTER_FIELDS.map((field) => [field, 0])) as CounterValues;
}

/** Converts a (possibly partial) counters object, as decoded from the wire, to a full vector. */
export function countersToVector(counters: Partial<Record<CounterField, number | null>> | null | undefined): number[] {
  return COUNTER_FIELDS.map((field) => Number(counters?.[field] ?? 0));
}

export function vectorToCounters(vector: readonly number[]): CounterValues {
  return Object.fromEntries(COUNTER_FIELDS.map((field, index) => [field, vector[index] ?? 0])) as CounterValues;
}
