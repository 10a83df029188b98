/**
 * The facts an IMP records about one SMTP session, and the per-object counter deltas they turn into. A session
 * counts for the client IP, the envelope sender's address and domain, and the header From domain. An
 * object that plays two roles in one session (the envelope and From domain are often the same) is
 * counted once. The HELO name is not reported, because the client chooses it freely.
 */

import { isIP } from 'node:net';

import ipaddr from 'ipaddr.js';

import type { ObjectKindName } from '../protocol/constants.js';
import type { CounterField, CounterValues } from '../protocol/counters.js';
import { CdrError } from '../../services/common/errors.js';

/** Verdict labels an IMP gives a message, one counter each. */
export type MessageLabel = 'ham' | 'spam' | 'virus' | 'phish' | 'bulk';
export const MESSAGE_LABELS: readonly MessageLabel[] = ['ham', 'spam', 'virus', 'phish', 'bulk'];

/** Authentication result classes, as counted: `fail` includes softfail and permerror. */
export type AuthResult = 'pass' | 'fail' | 'none';

/** One SMTP session as an IMP reports it. Every field but `clientIp` is optional. */
export interface SessionReport {
  /** Address of the connecting SMTP client, IPv4 or IPv6; IPv4-mapped IPv6 is reported as IPv4. */
  clientIp: string;
  /** Envelope sender (MAIL FROM); empty or absent for the null sender `<>`. */
  envelopeSender?: string;
  /** Domain of the header From address. */
  fromDomain?: string;
  /** Messages accepted in the session. @defaultValue 1 */
  messages?: number;
  rcptAccepted?: number;
  rcptRejected?: number;
  rcptUnknown?: number;
  label?: MessageLabel;
  spf?: AuthResult;
  dkim?: AuthResult;
  dmarc?: AuthResult;
  complaints?: number;
}

/** Counter deltas of one object. */
export interface ObjectDelta {
  kind: ObjectKindName;
  key: string;
  counters: Partial<CounterValues>;
}

const AUTH_FIELDS = {
  spf: { pass: 'spfPass', fail: 'spfFail', none: 'spfNone' },
  dkim: { pass: 'dkimPass', fail: 'dkimFail', none: 'dkimNone' },
  dmarc: { pass: 'dmarcPass', fail: 'dmarcFail', none: 'dmarcNone' },
} as const satisfies Record<string, Record<AuthResult, CounterField>>;

/**
 * Returns the address in the form the index keys it by: IPv4-mapped IPv6 as plain IPv4, IPv6 in its
 * shortest form; undefined when `address` is not an IP address.
 */
export function normaliseIp(address: string): string | undefined {
  const trimmed = address.trim().replace(/^\[|\]$/g, '').replace(/^ipv6:/i, '');
  const bare = trimmed.split('%')[0] ?? '';
  if (isIP(bare) === 0) {
    return undefined;
  }
  return ipaddr.process(bare).toString();
}

/** Returns the domain of an email address, lower-cased, or undefined when there is none. */
export function domainOfAddress(address: string | undefined): string | undefined {
  if (!address) {
    return undefined;
  }
  const at = address.lastIndexOf('@');
  if (at < 0 || at === address.length - 1) {
    return undefined;
  }
  return address.slice(at + 1).toLowerCase().replace(/\.$/, '');
}

/**
 * Turns a session into per-object deltas.
 *
 * @throws CdrError `ERR_IMPCLIENT_INVALID_REPORT` when `clientIp` is not an IP address or a count is
 *   negative or not an integer.
 */
export function sessionToDeltas(session: SessionReport): ObjectDelta[] {
  const clientIp = normaliseIp(session.clientIp ?? '');
  if (!clientIp) {
    throw new CdrError('ERR_IMPCLIENT_INVALID_REPORT', `clientIp must be an IPv4 or IPv6 address, got ${JSON.stringify(session.clientIp)}`, {
      details: { field: 'clientIp', value: session.clientIp },
    });
  }

  const counters: Partial<CounterValues> = { connections: 1 };
  const counts: [keyof SessionReport, CounterField][] = [
    ['messages', 'messages'],
    ['rcptAccepted', 'rcptAccepted'],
    ['rcptRejected', 'rcptRejected'],
    ['rcptUnknown', 'rcptUnknown'],
    ['complaints', 'complaints'],
  ];
  for (const [field, counter] of counts) {
    const value = session[field] ?? (field === 'messages' ? 1 : 0);
    if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) {
      throw new CdrError('ERR_IMPCLIENT_INVALID_REPORT', `${field} must be a non-negative integer, got ${JSON.stringify(value)}`, {
        details: { field, value },
      });
    }
    if (value > 0) {
      counters[counter] = value;
    }
  }

  const messages = counters.messages ?? 0;
  if (session.label && messages > 0) {
    counters[session.label] = messages;
  }
  for (const method of ['spf', 'dkim', 'dmarc'] as const) {
    const result = session[method];
    if (result && messages > 0) {
      counters[AUTH_FIELDS[method][result]] = messages;
    }
  }

  const deltas: ObjectDelta[] = [{ kind: 'ip', key: clientIp, counters }];

  // Objects other than the IP carry the message counters but not the connection.
  const messageCounters: Partial<CounterValues> = { ...counters };
  delete messageCounters.connections;
  if (messages === 0) {
    return deltas;
  }
  const sender = session.envelopeSender?.trim().toLowerCase();
  if (sender && domainOfAddress(sender)) {
    deltas.push({ kind: 'user', key: sender, counters: messageCounters });
  }
  const domains = new Set<string>();
  for (const domain of [domainOfAddress(sender), session.fromDomain?.trim().toLowerCase().replace(/\.$/, '')]) {
    if (domain) {
      domains.add(domain);
    }
  }
  for (const domain of domains) {
    deltas.push({ kind: 'domain', key: domain, counters: messageCounters });
  }
  return deltas;
}
