/**
 * Input readers of the replay tool. Each yields items in file order: raw messages (`.eml` files, mbox
 * entries), ready sessions (Postfix logs, JSON Lines), raw observations (JSON Lines), or a skip with the
 * reason when a part of the input cannot be used.
 */

import { readdirSync, readFileSync, statSync } from 'node:fs';
import { extname, join } from 'node:path';

import { OBJECT_KINDS, type ObjectKindName } from '../../protocol/constants.js';
import { COUNTER_FIELDS, type CounterValues } from '../../protocol/counters.js';
import { CdrError } from '../../../services/common/errors.js';
import { normaliseIp, type SessionReport } from '../session.js';

export type InputFormat = 'eml' | 'mbox' | 'postfix' | 'jsonl';
export const INPUT_FORMATS: readonly InputFormat[] = ['eml', 'mbox', 'postfix', 'jsonl'];

export type ReplayItem =
  | { type: 'message'; name: string; raw: Buffer }
  | { type: 'session'; name: string; session: SessionReport }
  | { type: 'observation'; name: string; kind: ObjectKindName; key: string; counters: Partial<CounterValues> }
  | { type: 'skip'; name: string; reason: string };

/**
 * Yields the items of every path; a folder is read recursively in name order.
 *
 * @throws CdrError `ERR_REPLAY_INPUT` when a path does not exist or cannot be read.
 */
export function* readInputs(paths: string[], format?: InputFormat): Generator<ReplayItem> {
  for (const path of paths) {
    for (const file of listFiles(path)) {
      let bytes: Buffer;
      try {
        bytes = readFileSync(file);
      } catch (error) {
        yield { type: 'skip', name: file, reason: `cannot read: ${(error as Error).message}` };
        continue;
      }
      const archive = archiveKind(bytes);
      if (archive) {
        yield { type: 'skip', name: file, reason: `${archive} archive; unpack it and replay the files it contains` };
        continue;
      }
      switch (format ?? detectFormat(file, bytes)) {
        case 'eml':
          yield { type: 'message', name: file, raw: bytes };
          break;
        case 'mbox':
          yield* splitMbox(file, bytes);
          break;
        case 'postfix':
          yield* readPostfixLog(file, bytes.toString('utf8'));
          break;
        case 'jsonl':
          yield* readJsonLines(file, bytes.toString('utf8'));
          break;
      }
    }
  }
}

function listFiles(path: string): string[] {
  let stats;
  try {
    stats = statSync(path);
  } catch (error) {
    throw new CdrError('ERR_REPLAY_INPUT', `cannot read replay input ${path}: ${(error as Error).message}`, { cause: error, details: { path } });
  }
  if (!stats.isDirectory()) {
    return [path];
  }
  return readdirSync(path)
    .sort()
    .filter((name) => !name.startsWith('.'))
    .flatMap((name) => listFiles(join(path, name)));
}

/** Returns the archive format of `bytes` by its magic number, or undefined. */
function archiveKind(bytes: Buffer): string | undefined {
  if (bytes[0] === 0x1f && bytes[1] === 0x8b) return 'gzip';
  if (bytes.subarray(0, 4).equals(Buffer.from('PK\x03\x04', 'latin1'))) return 'zip';
  if (bytes.subarray(0, 3).toString('latin1') === 'BZh') return 'bzip2';
  return undefined;
}

/**
 * The mbox separator line: "From ", the envelope sender, then the date. A message whose first header is
 * written "From : ..." (obsolete syntax) does not match, because a colon is no envelope sender.
 */
const MBOX_SEPARATOR = /^From [^\s:]+ [^\n]*\n/;

/** Picks the reader from the extension, then from the first bytes: mbox starts with a separator line. */
export function detectFormat(file: string, bytes: Buffer): InputFormat {
  const extension = extname(file).toLowerCase();
  if (extension === '.jsonl' || extension === '.ndjson') return 'jsonl';
  if (extension === '.log') return 'postfix';
  if (extension === '.mbox' || MBOX_SEPARATOR.test(bytes.subarray(0, 200).toString('latin1'))) return 'mbox';
  return 'eml';
}

/** Splits an mbox (mboxrd or mboxo) at "From " lines that follow an empty line, and unquotes ">From ". */
function* splitMbox(file: string, bytes: Buffer): Generator<ReplayItem> {
  const text = bytes.toString('latin1');
  const starts: number[] = [];
  const pattern = /(^|\n)From [^\s:]+ [^\n]*\n/g;
  for (const match of text.matchAll(pattern)) {
    starts.push(match.index + match[1]!.length);
  }
  if (starts.length === 0) {
    yield { type: 'skip', name: file, reason: 'mbox without a "From " separator line' };
    return;
  }
  for (let index = 0; index < starts.length; index += 1) {
    const entry = text.slice(starts[index], starts[index + 1] ?? text.length);
    const body = entry.slice(entry.indexOf('\n') + 1).replace(/^>(>*From )/gm, '$1');
    yield { type: 'message', name: `${file}#${index + 1}`, raw: Buffer.from(body, 'latin1') };
  }
}

interface PostfixSession {
  name: string;
  session: SessionReport;
}

/**
 * Reads smtpd lines of a Postfix log into sessions: `connect from` opens one per smtpd process,
 * `QUEUEID: client=` counts a message, `QUEUEID: from=<...>` sets its envelope sender, `NOQUEUE: reject:
 * RCPT` counts a rejected recipient (and an unknown one for "User unknown"), and a delivery with
 * `status=sent` counts an accepted recipient. Sessions are emitted at the end of the file, because
 * deliveries are logged after the client disconnected.
 */
function* readPostfixLog(file: string, text: string): Generator<ReplayItem> {
  const line = /postfix[\w./-]*\/(\w+)\[(\d+)\]: (.*)$/;
  const client = /^(?:connect from |([0-9A-Za-z]+): client=)[^[\s]*\[([^\]]+)\]/;
  const open = new Map<string, PostfixSession>();
  const byQueueId = new Map<string, PostfixSession>();
  const sessions: PostfixSession[] = [];
  let lineNumber = 0;

  const sessionFor = (pid: string, address: string): PostfixSession | undefined => {
    const ip = normaliseIp(address);
    if (!ip) {
      return undefined;
    }
    let current = open.get(pid);
    if (!current || current.session.clientIp !== ip) {
      current = { name: `${file}:${lineNumber}`, session: { clientIp: ip, messages: 0, rcptAccepted: 0, rcptRejected: 0, rcptUnknown: 0 } };
      open.set(pid, current);
      sessions.push(current);
    }
    return current;
  };

  for (const raw of text.split('\n')) {
    lineNumber += 1;
    const match = line.exec(raw);
    if (!match) {
      continue;
    }
    const [, daemon, pid, message] = match as unknown as [string, string, string, string];

    if (daemon === 'smtpd') {
      const connected = client.exec(message);
      if (connected) {
        const current = sessionFor(pid, connected[2]!);
        if (current && connected[1]) {
          current.session.messages! += 1;
          byQueueId.set(connected[1], current);
        }
        continue;
      }
      const reject = /^(?:NOQUEUE|[0-9A-Za-z]+): reject: RCPT from [^[\s]*\[([^\]]+)\]: (.*)$/.exec(message);
      if (reject) {
        const current = sessionFor(pid, reject[1]!);
        if (current) {
          current.session.rcptRejected! += 1;
          if (/user unknown/i.test(reject[2]!)) {
            current.session.rcptUnknown! += 1;
          }
          const sender = /from=<([^>]*)>/.exec(reject[2]!)?.[1];
          if (sender && !current.session.envelopeSender) {
            current.session.envelopeSender = sender;
          }
        }
        continue;
      }
      if (/^disconnect from /.test(message)) {
        open.delete(pid);
      }
      continue;
    }

    const queued = /^([0-9A-Za-z]+): (from|to)=<([^>]*)>(.*)$/.exec(message);
    const current = queued ? byQueueId.get(queued[1]!) : undefined;
    if (!queued || !current) {
      continue;
    }
    if (queued[2] === 'from') {
      current.session.envelopeSender = queued[3] || undefined;
    } else if (/status=sent/.test(queued[4]!)) {
      current.session.rcptAccepted! += 1;
    }
  }

  if (sessions.length === 0) {
    yield { type: 'skip', name: file, reason: 'no Postfix smtpd client lines (connect from, client=, NOQUEUE reject)' };
  }
  for (const { name, session } of sessions) {
    yield { type: 'session', name, session };
  }
}

/**
 * Reads JSON Lines: an object with `kind` and `key` is a raw observation with `counters`; any other
 * object is a session (see SessionReport). Blank lines are ignored.
 */
function* readJsonLines(file: string, text: string): Generator<ReplayItem> {
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index += 1) {
    const lineText = lines[index]!.trim();
    const name = `${file}:${index + 1}`;
    if (lineText === '') {
      continue;
    }
    let value: unknown;
    try {
      value = JSON.parse(lineText);
    } catch (error) {
      yield { type: 'skip', name, reason: `not JSON: ${(error as Error).message}` };
      continue;
    }
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      yield { type: 'skip', name, reason: `expected a JSON object, got ${Array.isArray(value) ? 'an array' : typeof value}` };
      continue;
    }
    const record = value as Record<string, unknown>;
    if ('kind' in record) {
      yield readObservationLine(name, record);
      continue;
    }
    yield { type: 'session', name, session: record as unknown as SessionReport };
  }
}

function readObservationLine(name: string, record: Record<string, unknown>): ReplayItem {
  const kind = record['kind'];
  if (typeof kind !== 'string' || !OBJECT_KINDS.includes(kind as ObjectKindName)) {
    return { type: 'skip', name, reason: `kind must be one of ${OBJECT_KINDS.join(', ')}, got ${JSON.stringify(kind)}` };
  }
  if (typeof record['key'] !== 'string' || record['key'] === '') {
    return { type: 'skip', name, reason: `key must be a non-empty string, got ${JSON.stringify(record['key'])}` };
  }
  const counters: Partial<CounterValues> = {};
  const given = (record['counters'] ?? {}) as Record<string, unknown>;
  for (const [field, count] of Object.entries(given)) {
    if (!(COUNTER_FIELDS as readonly string[]).includes(field)) {
      return { type: 'skip', name, reason: `unknown counter ${JSON.stringify(field)}; expected one of ${COUNTER_FIELDS.join(', ')}` };
    }
    if (typeof count !== 'number' || !Number.isSafeInteger(count) || count < 0) {
      return { type: 'skip', name, reason: `counter ${field} must be a non-negative integer, got ${JSON.stringify(count)}` };
    }
    counters[field as keyof CounterValues] = count;
  }
  if (Object.values(counters).every((count) => !count)) {
    return { type: 'skip', name, reason: 'observation has no counter above zero' };
  }
  return { type: 'observation', name, kind: kind as ObjectKindName, key: record['key'], counters };
}
