/**
 * A feed's definition as an administrator gives it (`cdrctl feeds add`), and its checks.
 */

import { X509Certificate } from 'node:crypto';
import { isAbsolute } from 'node:path';

import { CdrError } from '../../common/errors.js';
import { FEED_FORMATS, type FeedFormat } from './dataset.js';

export interface FeedDefinition {
  /** Lower-case id, also the `source` of the listings it produces. */
  id: string;
  /** Absolute file path, or an http:// or https:// URL. */
  source: string;
  format: FeedFormat;
  /** DNS zone the DNS front serves this feed as; empty for none. */
  zone: string;
  /** Category whose weight in the policy's `listingWeights` applies to a listing of this feed. */
  category: string;
  /** Interval between refreshes, in seconds; 0 refreshes only on `cdrctl feeds refresh`. */
  refreshSeconds: number;
  /** Largest accepted source, in bytes. */
  maxBytes: number;
  /** Time a fetch may take, in milliseconds. */
  timeoutMs: number;
  /**
   * PEM certificates of the CAs that an https:// source's certificate must chain to, in place of the
   * system CAs, or empty for the system CAs. They replicate with the definition.
   */
  caPem: string;
}

export const FEED_LIMITS = {
  refreshSeconds: { minimum: 60, maximum: 604_800 },
  maxBytes: { minimum: 1, maximum: 1_073_741_824 },
  timeoutMs: { minimum: 100, maximum: 600_000 },
} as const;

/** Maximum size of a feed's CA certificates, in bytes of PEM. */
export const MAX_CA_PEM_BYTES = 65_536;

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[^-]+-----END CERTIFICATE-----/g;

const ID = /^[a-z0-9][a-z0-9._-]{0,62}$/;
const CATEGORY = /^[a-z][a-z0-9_-]{0,31}$/;
const ZONE = /^([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?\.)*[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?$/;

/**
 * Checks a definition and returns it normalised (zone lower-case without a trailing dot).
 *
 * @throws CdrError `ERR_FEED_INVALID` naming the field, the expected form and the value received
 */
export function checkFeedDefinition(input: Partial<FeedDefinition>): FeedDefinition {
  const id = String(input.id ?? '');
  if (!ID.test(id)) {
    throw invalid('id', 'lower-case letters, digits, ".", "_" or "-", 1 to 63 characters, starting with a letter or digit', id);
  }

  const source = String(input.source ?? '');
  if (!/^https?:\/\/[^/\s]+/i.test(source) && !isAbsolute(source)) {
    throw invalid('source', 'an absolute file path or an http:// or https:// URL', source);
  }

  const format = String(input.format ?? '') as FeedFormat;
  if (!FEED_FORMATS.includes(format)) {
    throw invalid('format', `one of ${FEED_FORMATS.join(', ')}`, format);
  }

  const zone = String(input.zone ?? '').toLowerCase().replace(/\.$/, '');
  if (zone !== '' && (!ZONE.test(zone) || zone.length > 253)) {
    throw invalid('zone', 'a DNS name such as bl.example.net, or empty', zone);
  }
  if (zone !== '' && format === 'dmarc') {
    throw invalid('zone', 'empty, because DMARC reports are not served over DNS', zone);
  }

  const category = String(input.category ?? '');
  if (!CATEGORY.test(category)) {
    throw invalid('category', 'a lower-case word of 1 to 32 characters, such as block or allow, that the policy weighs in listingWeights', category);
  }

  const refreshSeconds = Number(input.refreshSeconds ?? 0);
  if (!Number.isInteger(refreshSeconds) || (refreshSeconds !== 0 && (refreshSeconds < FEED_LIMITS.refreshSeconds.minimum || refreshSeconds > FEED_LIMITS.refreshSeconds.maximum))) {
    throw invalid('refreshSeconds', `0 (manual refresh only) or an integer from ${FEED_LIMITS.refreshSeconds.minimum} to ${FEED_LIMITS.refreshSeconds.maximum}`, refreshSeconds);
  }
  const maxBytes = Number(input.maxBytes ?? 0);
  if (!Number.isInteger(maxBytes) || maxBytes < FEED_LIMITS.maxBytes.minimum || maxBytes > FEED_LIMITS.maxBytes.maximum) {
    throw invalid('maxBytes', `an integer from ${FEED_LIMITS.maxBytes.minimum} to ${FEED_LIMITS.maxBytes.maximum}`, maxBytes);
  }
  const timeoutMs = Number(input.timeoutMs ?? 0);
  if (!Number.isInteger(timeoutMs) || timeoutMs < FEED_LIMITS.timeoutMs.minimum || timeoutMs > FEED_LIMITS.timeoutMs.maximum) {
    throw invalid('timeoutMs', `an integer from ${FEED_LIMITS.timeoutMs.minimum} to ${FEED_LIMITS.timeoutMs.maximum}`, timeoutMs);
  }

  const caPem = String(input.caPem ?? '');
  checkCaPem(caPem, source);

  return { id, source, format, zone, category, refreshSeconds, maxBytes, timeoutMs, caPem };
}

/** Checks that `caPem` is empty, or PEM certificates that parse, for an https:// source. */
function checkCaPem(caPem: string, source: string): void {
  if (caPem === '') {
    return;
  }
  if (!/^https:\/\//i.test(source)) {
    throw invalid('caPem', 'empty unless the source is an https:// URL', `${caPem.length} bytes`);
  }
  if (Buffer.byteLength(caPem) > MAX_CA_PEM_BYTES) {
    throw invalid('caPem', `at most ${MAX_CA_PEM_BYTES} bytes of PEM certificates`, `${Buffer.byteLength(caPem)} bytes`);
  }
  const blocks = caPem.match(PEM_CERTIFICATE) ?? [];
  if (blocks.length === 0) {
    throw invalid('caPem', 'one or more PEM certificates (-----BEGIN CERTIFICATE-----)', `${caPem.length} bytes without a certificate`);
  }
  blocks.forEach((block, index) => {
    try {
      new X509Certificate(block);
    } catch (error) {
      throw invalid('caPem', 'PEM certificates that parse', `certificate ${index + 1}: ${(error as Error).message}`);
    }
  });
}

function invalid(field: string, expected: string, value: unknown): CdrError {
  return new CdrError('ERR_FEED_INVALID', `feed ${field} must be ${expected}, got ${JSON.stringify(value)}`, { details: { field, value } });
}
