/**
 * DMARC aggregate reports (RFC 7489 appendix C, and the RFC 9990 namespace): decoding (XML, gzip, zip,
 * or a mail with one of those attached, chosen by content and not by file name), parsing, and import
 * of per-source-IP and per-domain authentication counts into the index.
 */

import { gunzipSync } from 'node:zlib';

import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { unzipSync } from 'fflate';
import { simpleParser } from 'mailparser';

import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { countersToVector } from '../../../modules/protocol/counters.js';
import { normaliseKey } from '../keys.js';
import type { ReputationIndex } from '../reputation-index.js';
import type { IndexStore, PreparedObservation } from '../store.js';
import type { FeedDefinition } from './definition.js';
import type { LineError } from './parse.js';

/** Values RFC 7489 allows; anything else is kept, counted as written in lower case, and flagged. */
const DISPOSITIONS = ['none', 'quarantine', 'reject'];
const POLICY_RESULTS = ['pass', 'fail'];
const DKIM_RESULTS = ['none', 'pass', 'fail', 'policy', 'neutral', 'temperror', 'permerror'];
const SPF_RESULTS = ['none', 'neutral', 'pass', 'fail', 'softfail', 'temperror', 'permerror'];

/** Largest decompressed report accepted, in bytes; a bigger one is rejected as a decompression bomb. */
export const MAX_REPORT_BYTES = 64 * 1024 * 1024;

export interface DmarcRecord {
  sourceIp: string;
  count: number;
  disposition: string;
  dkim: string;
  spf: string;
  headerFrom: string;
  dkimResults: { domain: string; result: string }[];
  spfResults: { domain: string; result: string }[];
}

export interface DmarcReport {
  orgName: string;
  reportId: string;
  beginSeconds: number;
  endSeconds: number;
  domain: string;
  /** Published policy; `sp` and `np` are undefined when the report leaves them out. */
  policy: { p: string; sp: string | undefined; np: string | undefined; pct: number | undefined };
  records: DmarcRecord[];
  /** Non-standard values, kept and flagged: "record 3: dkim \"Pass\" is not one of ...". */
  flags: string[];
  /** Encoding layers removed to reach the XML (mail, gzip, zip), outermost first. */
  layers: string[];
}

type Bytes = Uint8Array;

const isGzip = (bytes: Bytes) => bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b;
const isZip = (bytes: Bytes) => bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04;

/**
 * Decodes and parses one report.
 *
 * @throws CdrError `ERR_DMARC_EMPTY`, `ERR_DMARC_DOUBLE_COMPRESSED`, `ERR_DMARC_NOT_XML`,
 *   `ERR_DMARC_INVALID` (XML, but not an aggregate report), `ERR_FEED_TOO_LARGE` (decompressed size)
 */
export async function parseDmarcReport(bytes: Bytes, name: string): Promise<DmarcReport> {
  const layers: string[] = [];
  const xml = await unwrap(bytes, name, layers, false);
  return parseXml(xml, name, layers);
}

async function unwrap(bytes: Bytes, name: string, layers: string[], compressed: boolean): Promise<Bytes> {
  if (Buffer.from(bytes).toString('latin1').trim() === '') {
    throw new CdrError('ERR_DMARC_EMPTY', `${name}: the report is empty${layers.length ? ` inside ${layers.join(' > ')}` : ''}; expected XML, gzip, zip or a mail`, { details: { name } });
  }
  if (isGzip(bytes) || isZip(bytes)) {
    if (compressed) {
      throw new CdrError('ERR_DMARC_DOUBLE_COMPRESSED', `${name}: the report is compressed twice (${layers.join(' > ')} > ${isGzip(bytes) ? 'gzip' : 'zip'}); send it compressed once`, {
        details: { name, layers },
      });
    }
    layers.push(isGzip(bytes) ? 'gzip' : 'zip');
    return unwrap(decompress(bytes, name), name, layers, true);
  }

  const head = Buffer.from(bytes.subarray(0, 2048)).toString('latin1').replace(/^\uFEFF/, '').trimStart();
  if (head.startsWith('<')) {
    return bytes;
  }
  // A mail starts with a header field, or with the "From " line of an mbox.
  if ((/^[A-Za-z][A-Za-z0-9-]*:/.test(head) || head.startsWith('From ')) && layers.length === 0) {
    layers.push('mail');
    const mail = await simpleParser(Buffer.from(bytes));
    const attachment = mail.attachments.find((part) => isGzip(part.content) || isZip(part.content) || /xml/i.test(part.contentType));
    if (!attachment) {
      throw new CdrError('ERR_DMARC_INVALID', `${name}: the mail has no XML, gzip or zip attachment; is it an aggregate report?`, { details: { name } });
    }
    return unwrap(attachment.content, name, layers, false);
  }
  throw new CdrError('ERR_DMARC_NOT_XML', `${name}: the report is not XML, gzip, zip or a mail (it starts with ${JSON.stringify(head.slice(0, 20))})`, { details: { name } });
}

function decompress(bytes: Bytes, name: string): Bytes {
  try {
    if (isGzip(bytes)) {
      return gunzipLenient(bytes);
    }
    const files = unzipSync(bytes, { filter: (file) => file.originalSize <= MAX_REPORT_BYTES });
    const entries = Object.entries(files);
    const chosen = entries.find(([fileName]) => /\.xml$/i.test(fileName)) ?? entries[0];
    if (!chosen) {
      throw new Error('the archive contains no file within the size limit');
    }
    return chosen[1];
  } catch (error) {
    if ((error as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') {
      throw new CdrError('ERR_FEED_TOO_LARGE', `${name}: the report decompresses to more than ${MAX_REPORT_BYTES} bytes`, { cause: error, details: { name } });
    }
    throw new CdrError('ERR_DMARC_NOT_XML', `${name}: the compressed report cannot be decompressed: ${(error as Error).message}`, { cause: error, details: { name } });
  }
}

/**
 * Gunzips, retrying without trailing CR, LF and space bytes: some senders append a line break
 * after the gzip trailer, which zlib reads as the start of a second, broken member.
 */
function gunzipLenient(bytes: Bytes): Bytes {
  try {
    return gunzipSync(bytes, { maxOutputLength: MAX_REPORT_BYTES });
  } catch (error) {
    let end = bytes.length;
    while (end > 0 && [0x0d, 0x0a, 0x20].includes(bytes[end - 1]!)) {
      end -= 1;
    }
    if (end === bytes.length) {
      throw error;
    }
    return gunzipSync(bytes.subarray(0, end), { maxOutputLength: MAX_REPORT_BYTES });
  }
}

const parser = new XMLParser({
  ignoreAttributes: true,
  removeNSPrefix: true,
  parseTagValue: false,
  trimValues: true,
  isArray: (tagName) => ['record', 'dkim', 'spf'].includes(tagName),
});

function parseXml(xmlBytes: Bytes, name: string, layers: string[]): DmarcReport {
  // Reports in the wild declare UTF-8 but carry invalid bytes; Latin-1 keeps every byte readable.
  const text = Buffer.from(xmlBytes).toString(isValidUtf8(xmlBytes) ? 'utf8' : 'latin1');
  const valid = XMLValidator.validate(text);
  if (valid !== true) {
    throw new CdrError('ERR_DMARC_NOT_XML', `${name}: line ${valid.err.line}: ${valid.err.msg}`, { details: { name, line: valid.err.line } });
  }

  const document = parser.parse(text) as XmlNode;
  const feedback = document['feedback'] as XmlNode | undefined;
  if (!feedback || typeof feedback !== 'object' || !Array.isArray(feedback['record'])) {
    throw new CdrError('ERR_DMARC_INVALID', `${name}: expected a <feedback> element with <record> elements, as RFC 7489 appendix C defines an aggregate report`, {
      details: { name },
    });
  }

  const flags: string[] = [];
  const metadata = child(feedback, 'report_metadata');
  const published = child(feedback, 'policy_published');
  const records: DmarcRecord[] = [];
  (feedback['record'] as XmlNode[]).forEach((record, index) => {
    const row = child(record, 'row');
    const evaluated = child(row, 'policy_evaluated');
    const flag = (field: string, value: string, allowed: string[]) => {
      if (!allowed.includes(value)) {
        flags.push(`record ${index + 1}: ${field} ${JSON.stringify(value)} is not one of ${allowed.join(', ')}`);
      }
      return value.toLowerCase();
    };
    const auth = child(record, 'auth_results');
    records.push({
      sourceIp: String(row['source_ip'] ?? ''),
      count: Number(row['count'] ?? 0),
      disposition: flag('disposition', String(evaluated['disposition'] ?? ''), DISPOSITIONS),
      dkim: flag('policy_evaluated.dkim', String(evaluated['dkim'] ?? ''), POLICY_RESULTS),
      spf: flag('policy_evaluated.spf', String(evaluated['spf'] ?? ''), POLICY_RESULTS),
      headerFrom: String(child(record, 'identifiers')['header_from'] ?? '').toLowerCase(),
      dkimResults: ((auth['dkim'] ?? []) as XmlNode[]).map((result) => ({
        domain: String(result['domain'] ?? '').toLowerCase(),
        result: flag('auth_results.dkim', String(result['result'] ?? ''), DKIM_RESULTS),
      })),
      spfResults: ((auth['spf'] ?? []) as XmlNode[]).map((result) => ({
        domain: String(result['domain'] ?? '').toLowerCase(),
        result: flag('auth_results.spf', String(result['result'] ?? ''), SPF_RESULTS),
      })),
    });
  });

  return {
    orgName: String(metadata['org_name'] ?? ''),
    reportId: String(metadata['report_id'] ?? ''),
    beginSeconds: Number(child(metadata, 'date_range')['begin'] ?? 0),
    endSeconds: Number(child(metadata, 'date_range')['end'] ?? 0),
    domain: String(published['domain'] ?? '').toLowerCase(),
    policy: {
      p: String(published['p'] ?? ''),
      sp: published['sp'] === undefined ? undefined : String(published['sp']),
      np: published['np'] === undefined ? undefined : String(published['np']),
      pct: published['pct'] === undefined ? undefined : Number(published['pct']),
    },
    records,
    flags,
    layers,
  };
}

/** An element as fast-xml-parser returns it: text, or child elements by name. */
type XmlNode = { [name: string]: unknown };

/** Returns the child element `name`, or an empty element when it is missing or only text. */
function child(node: XmlNode, name: string): XmlNode {
  const value = node[name];
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as XmlNode) : {};
}

function isValidUtf8(bytes: Bytes): boolean {
  try {
    new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    return true;
  } catch {
    return false;
  }
}

/** Counts of one record as index counters: `count` messages with their SPF, DKIM and DMARC results. */
export function recordCounters(record: DmarcRecord): Record<string, number> {
  const count = record.count;
  const spf = record.spfResults[0]?.result ?? 'none';
  const dkimPass = record.dkimResults.some((result) => result.result === 'pass');
  const dkimFail = !dkimPass && record.dkimResults.some((result) => result.result === 'fail');
  const dmarcPass = record.dkim === 'pass' || record.spf === 'pass';
  return {
    messages: count,
    spfPass: spf === 'pass' ? count : 0,
    spfFail: spf === 'fail' || spf === 'softfail' ? count : 0,
    spfNone: spf === 'pass' || spf === 'fail' || spf === 'softfail' ? 0 : count,
    dkimPass: dkimPass ? count : 0,
    dkimFail: dkimFail ? count : 0,
    dkimNone: dkimPass || dkimFail ? 0 : count,
    dmarcPass: dmarcPass ? count : 0,
    dmarcFail: dmarcPass ? 0 : count,
  };
}

/**
 * Imports one report as an Observe batch of the pseudo-IMP `dmarc:FEED`: per record, the source IP
 * and the header-from domain get the record's message count and authentication results. Records with
 * an invalid IP or domain are skipped and reported like bad lines.
 * NOTE: the counts are dated at import time, not at the report's date range, so that a report
 * delivered after the retention window still counts.
 */
export async function importDmarcReport(
  bytes: Buffer,
  feed: FeedDefinition,
  store: IndexStore,
  index: ReputationIndex,
  log: Logger,
): Promise<{ entries: number; lineErrors: LineError[] }> {
  const report = await parseDmarcReport(bytes, feed.source);
  const now = Date.now();
  const observations: PreparedObservation[] = [];
  const lineErrors: LineError[] = report.flags.slice(0, 20).map((reason) => ({ line: 0, reason }));

  report.records.forEach((record, position) => {
    const vector = countersToVector(recordCounters(record));
    for (const [kind, raw] of [
      ['ip', record.sourceIp],
      ['domain', record.headerFrom],
    ] as const) {
      try {
        const normalised = normaliseKey(kind, raw);
        observations.push({ kind, key: normalised.key, parents: normalised.parents, intervalStartMs: now, vector });
      } catch (error) {
        lineErrors.push({ line: position + 1, reason: `record ${position + 1}: ${(error as Error).message}` });
      }
    }
  });

  const sequence = now;
  await store.observe(`dmarc:${feed.id}`, sequence, observations);
  index.clearCache();
  log.info({ feed: feed.id, reportId: report.reportId, org: report.orgName, records: report.records.length, flags: report.flags.length, layers: report.layers }, 'DMARC report imported');
  return { entries: report.records.length, lineErrors };
}
