/**
 * The on-disk spool of Observe batches and the IMP's persistent sequence counter.
 *
 * Files in the spool folder:
 *
 *     sequence                  the highest sequence ever assigned, decimal, rewritten atomically
 *     <sequence, 20 digits>.batch   one ObserveRequest, protobuf-encoded, written atomically
 *     <sequence>.batch.bad      a batch that did not decode at start, moved aside and reported
 *
 * A batch is written (temporary file, fsync, rename, fsync of the folder) before it is sent, and its file
 * is removed only after the repository acknowledged its sequence. The sequence counter is written before
 * the batch that uses it, so a crash never reuses a sequence. The zero-padded names sort oldest first.
 */

import { closeSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { proto } from '../protocol/constants.js';
import type { impcdr } from '../protocol/generated/messages.js';
import { CdrError } from '../../services/common/errors.js';

export interface SpoolLimits {
  /** Maximum batches waiting. */
  maxBatches: number;
  /** Maximum bytes of batch files waiting. */
  maxBytes: number;
}

export interface SpooledBatch {
  sequence: number;
  bytes: number;
  observations: number;
}

/** A batch that was not stored because the spool was full. */
export interface DroppedBatch {
  sequence: number;
  observations: number;
  bytes: number;
  reason: string;
}

/** A spool file that did not decode at start. */
export interface CorruptBatch {
  file: string;
  reason: string;
}

const BATCH_SUFFIX = '.batch';

export class Spool {
  readonly dir: string;
  readonly #limits: SpoolLimits;
  /** Batches waiting, oldest first. */
  readonly #batches = new Map<number, SpooledBatch>();
  #bytes = 0;
  #lastSequence = 0;
  /** Files found at start that did not decode; they stay on disk with a `.bad` suffix. */
  readonly corrupt: CorruptBatch[] = [];

  /**
   * Opens (creating it when missing) the spool in `dir` and indexes the batches left there.
   *
   * @throws CdrError `ERR_IMPCLIENT_STATE` when the folder cannot be created or read, or the sequence
   *   file contains something other than a non-negative integer.
   */
  constructor(dir: string, limits: SpoolLimits) {
    this.dir = dir;
    this.#limits = limits;
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
    } catch (error) {
      throw new CdrError('ERR_IMPCLIENT_STATE', `cannot create the spool folder ${dir}: ${(error as Error).message}`, { cause: error, details: { dir } });
    }
    this.#lastSequence = this.#readSequenceFile();
    this.#indexBatches();
  }

  /** The highest sequence assigned so far, 0 when none was. */
  get lastSequence(): number {
    return this.#lastSequence;
  }

  get batchCount(): number {
    return this.#batches.size;
  }

  get byteCount(): number {
    return this.#bytes;
  }

  /** Waiting batches, oldest first. */
  pending(): SpooledBatch[] {
    return [...this.#batches.values()];
  }

  /** Raises the sequence counter to at least `sequence`, as after a HelloAccepted.last_sequence. */
  raiseSequence(sequence: number): void {
    if (sequence > this.#lastSequence) {
      this.#lastSequence = sequence;
      this.#writeSequenceFile();
    }
  }

  /**
   * Assigns the next sequence to `observations` and stores the batch. Returns the stored batch, or the
   * dropped batch when the spool is full; a full spool keeps the older batches and drops the new one.
   */
  add(observations: impcdr.v1.IObservation[]): { stored: SpooledBatch } | { dropped: DroppedBatch } {
    const sequence = this.#lastSequence + 1;
    const payload = proto.ObserveRequest.encode({ sequence, observations }).finish();

    if (this.#batches.size + 1 > this.#limits.maxBatches || this.#bytes + payload.length > this.#limits.maxBytes) {
      const reason =
        `spool ${this.dir} is full: ${this.#batches.size} batches of at most ${this.#limits.maxBatches}, ` +
        `${this.#bytes} bytes of at most ${this.#limits.maxBytes}, and the new batch has ${payload.length} bytes`;
      return { dropped: { sequence, observations: observations.length, bytes: payload.length, reason } };
    }

    this.#lastSequence = sequence;
    this.#writeSequenceFile();
    writeFileDurably(this.dir, batchFileName(sequence), payload);

    const stored = { sequence, bytes: payload.length, observations: observations.length };
    this.#batches.set(sequence, stored);
    this.#bytes += payload.length;
    return { stored };
  }

  /** Reads the stored batch `sequence` as an ObserveRequest. */
  read(sequence: number): impcdr.v1.ObserveRequest {
    const bytes = readFileSync(join(this.dir, batchFileName(sequence)));
    return proto.ObserveRequest.decode(bytes);
  }

  /** Removes batch `sequence` after its acknowledgement; removing an unknown sequence does nothing. */
  remove(sequence: number): void {
    const batch = this.#batches.get(sequence);
    if (!batch) {
      return;
    }
    rmSync(join(this.dir, batchFileName(sequence)), { force: true });
    this.#batches.delete(sequence);
    this.#bytes -= batch.bytes;
  }

  #readSequenceFile(): number {
    let text: string;
    try {
      text = readFileSync(join(this.dir, 'sequence'), 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
        return 0;
      }
      throw new CdrError('ERR_IMPCLIENT_STATE', `cannot read ${join(this.dir, 'sequence')}: ${(error as Error).message}`, { cause: error });
    }
    const value = Number(text.trim());
    if (!/^[0-9]+$/.test(text.trim()) || !Number.isSafeInteger(value)) {
      throw new CdrError(
        'ERR_IMPCLIENT_STATE',
        `${join(this.dir, 'sequence')} must hold a non-negative integer, got ${JSON.stringify(text.slice(0, 40))}; ` +
          'restore it from a backup, or remove it and the IMP continues above the last sequence the repository returns',
        { details: { path: join(this.dir, 'sequence') } },
      );
    }
    return value;
  }

  #writeSequenceFile(): void {
    writeFileDurably(this.dir, 'sequence', Buffer.from(`${this.#lastSequence}\n`));
  }

  #indexBatches(): void {
    const names = readdirSync(this.dir)
      .filter((name) => /^[0-9]{20}\.batch$/.test(name))
      .sort();

    for (const name of names) {
      const sequence = Number(name.slice(0, -BATCH_SUFFIX.length));
      const path = join(this.dir, name);
      try {
        const decoded = proto.ObserveRequest.decode(readFileSync(path));
        if (Number(decoded.sequence) !== sequence || decoded.observations.length === 0) {
          throw new Error(`holds sequence ${Number(decoded.sequence)} with ${decoded.observations.length} observations`);
        }
        const bytes = statSync(path).size;
        this.#batches.set(sequence, { sequence, bytes, observations: decoded.observations.length });
        this.#bytes += bytes;
        this.#lastSequence = Math.max(this.#lastSequence, sequence);
      } catch (error) {
        renameSync(path, `${path}.bad`);
        this.corrupt.push({ file: `${path}.bad`, reason: (error as Error).message });
      }
    }
  }
}

function batchFileName(sequence: number): string {
  return `${String(sequence).padStart(20, '0')}${BATCH_SUFFIX}`;
}

/** Writes `name` in `dir` through a temporary file, fsync and rename, then fsyncs the folder. */
function writeFileDurably(dir: string, name: string, bytes: Uint8Array): void {
  const path = join(dir, name);
  const temporary = `${path}.tmp`;
  const fd = openSync(temporary, 'w', 0o600);
  try {
    writeSync(fd, bytes);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(temporary, path);

  const dirFd = openSync(dir, 'r');
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}
