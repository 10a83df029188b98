/**
 * Polls the repository's status through its control socket and keeps what the MIB shows. A snapshot
 * contains the last good status, pair status and feed list, whether the last poll reached the
 * repository, the free disk space, and the traffic rates between the last two good polls.
 */

import { statfs } from 'node:fs/promises';

import { ControlClient } from '../../modules/protocol/control-client.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { CdrError } from '../common/errors.js';

/** Result of one poll. Values from the last good poll stay when the repository is unreachable. */
export interface RepositorySnapshot {
  /** Whether this poll read the status; false means the repository is down or its socket refused. */
  reachable: boolean;
  /** Time of this poll, in milliseconds since the epoch. */
  polledMs: number;
  /** Time of the last poll that read the status; 0 when none did. */
  lastSuccessMs: number;
  status: impcdr.v1.IStatus | undefined;
  pair: impcdr.v1.IPairStatus | undefined;
  /** Feeds as `feed_list` returned them at `lastSuccessMs`. */
  feeds: impcdr.v1.IFeedInfo[];
  /** Bytes available to unprivileged users on the file system of the state folder; undefined when statfs failed. */
  diskFreeBytes: number | undefined;
  /** Per-second rates between the last two good polls, rounded down. */
  rates: { observations: number; lookupKeys: number; errors: number };
  /** Error code of this poll when it failed. */
  errorCode: string | undefined;
}

export const EMPTY_SNAPSHOT: RepositorySnapshot = Object.freeze({
  reachable: false,
  polledMs: 0,
  lastSuccessMs: 0,
  status: undefined,
  pair: undefined,
  feeds: [],
  diskFreeBytes: undefined,
  rates: { observations: 0, lookupKeys: 0, errors: 0 },
  errorCode: undefined,
});

/** Status, pair status and feed list as one poll reads them from the repository. */
export interface RepositoryRead {
  status: impcdr.v1.IStatus;
  pair: impcdr.v1.IPairStatus;
  feeds: impcdr.v1.IFeedInfo[];
}

/** Source of status for the agent; `ControlSocketSource` in production. */
export interface StatusSource {
  read(): Promise<RepositoryRead>;
}

/** Reads `status`, `pair_status` and `feed_list` over a new control connection per poll, with a time limit. */
export class ControlSocketSource implements StatusSource {
  readonly #socketPath: string;
  readonly #timeoutMs: number;

  constructor(socketPath: string, timeoutMs: number) {
    this.#socketPath = socketPath;
    this.#timeoutMs = timeoutMs;
  }

  /** @throws CdrError `ERR_CONTROL_UNAVAILABLE` when the socket rejects the connection or the response times out */
  async read(): Promise<RepositoryRead> {
    const client = await ControlClient.connect(this.#socketPath);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, rejectTimeout) => {
      timer = setTimeout(
        () =>
          rejectTimeout(
            new CdrError('ERR_CONTROL_UNAVAILABLE', `the repository did not respond on ${this.#socketPath} within ${this.#timeoutMs} ms; check that it runs and is not overloaded`),
          ),
        this.#timeoutMs,
      );
    });
    try {
      const [statusResponse, pairResponse, feedsResponse] = await Promise.race([
        Promise.all([client.call({ status: {} }), client.call({ pairStatus: {} }), client.call({ feedList: {} })]),
        timeout,
      ]);
      return { status: statusResponse.status!, pair: pairResponse.pairStatus!, feeds: feedsResponse.feeds?.feeds ?? [] };
    } finally {
      clearTimeout(timer);
      client.close();
    }
  }
}

/**
 * Polls `source` once and derives the next snapshot from `previous`.
 *
 * @param statePath - folder whose file system is measured for impCdrIndexDiskFree
 */
export async function pollSnapshot(
  source: StatusSource,
  statePath: string,
  previous: RepositorySnapshot,
  now: () => number = Date.now,
): Promise<RepositorySnapshot> {
  const diskFreeBytes = await statfs(statePath).then(
    (stats) => stats.bavail * stats.bsize,
    () => undefined,
  );

  let read: RepositoryRead;
  try {
    read = await source.read();
  } catch (error) {
    return {
      ...previous,
      reachable: false,
      polledMs: now(),
      diskFreeBytes,
      rates: { observations: 0, lookupKeys: 0, errors: 0 },
      errorCode: error instanceof CdrError ? error.code : 'ERR_CONTROL_UNAVAILABLE',
    };
  }

  const polledMs = now();
  return {
    reachable: true,
    polledMs,
    lastSuccessMs: polledMs,
    status: read.status,
    pair: read.pair,
    feeds: read.feeds,
    diskFreeBytes,
    rates: previous.reachable ? trafficRates(previous, read.status, polledMs) : { observations: 0, lookupKeys: 0, errors: 0 },
    errorCode: undefined,
  };
}

function trafficRates(previous: RepositorySnapshot, status: impcdr.v1.IStatus, polledMs: number): RepositorySnapshot['rates'] {
  const seconds = (polledMs - previous.lastSuccessMs) / 1000;
  const rate = (field: 'observations' | 'lookupKeys' | 'errors') => {
    const before = Number(previous.status?.traffic?.[field] ?? 0);
    const after = Number(status.traffic?.[field] ?? 0);
    // A repository restart resets its counters; no rate is known across it.
    if (seconds <= 0 || after < before) {
      return 0;
    }
    return Math.floor((after - before) / seconds);
  };
  return { observations: rate('observations'), lookupKeys: rate('lookupKeys'), errors: rate('errors') };
}
