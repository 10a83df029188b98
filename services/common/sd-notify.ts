/**
 * The systemd service notification protocol (sd_notify(3)) as the daemons speak it: `READY=1` once
 * listening, `STATUS=` lines for `systemctl status`, `WATCHDOG=1` only while the daemon's own health
 * checks pass, `EXTEND_TIMEOUT_USEC=` during long opens and `STOPPING=1` at shutdown.
 *
 * Each notification is one datagram of newline-separated `KEY=VALUE` assignments sent to the
 * AF_UNIX/SOCK_DGRAM socket named by `$NOTIFY_SOCKET`. Node.js has no Unix datagram sockets, so the
 * datagram is sent with `unix-dgram`: a small nan-based addon (one C++ file of about 400 lines) that
 * `npm ci` compiles with node-gyp and that needs no system library. The
 * alternative `sd-notify` package links libsystemd, which adds a build dependency (libsystemd-dev) and
 * ties the daemons to the systemd version on the build machine, and an FFI binding (koffi) would load a
 * much larger general-purpose addon for one `sendto` call.
 *
 * Without `$NOTIFY_SOCKET` every method does nothing, so the daemons run the same under `make run`.
 */

import { createRequire } from 'node:module';

import type { Logger } from './logger.js';

/** The part of `unix-dgram`'s socket that this module uses (the package ships no types). */
interface UnixDatagramSocket {
  send(buffer: Buffer, offset: number, length: number, path: string, callback: (error?: Error & { code?: number | string }) => void): void;
  close(): void;
  on(event: 'error', listener: (error: Error) => void): void;
}

interface UnixDatagramModule {
  createSocket(type: 'unix_dgram'): UnixDatagramSocket;
}

/** A health check: resolves to `undefined` when healthy, or to the reason it is not. */
export type HealthCheck = () => Promise<string | undefined>;

/** Options of `SdNotifier.fromEnvironment`. */
export interface SdNotifierOptions {
  /** Environment to read `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` from. @defaultValue process.env */
  env?: NodeJS.ProcessEnv;
  /** Time a health check may take before it counts as failed, in milliseconds. @defaultValue 5000 */
  healthCheckTimeoutMs?: number;
}

/** Largest watchdog interval accepted from `WATCHDOG_USEC`: one day, in microseconds. */
const MAX_WATCHDOG_USEC = 86_400_000_000;

/**
 * Sender of sd_notify messages for one daemon process. Create it with `fromEnvironment`; a notifier
 * without `$NOTIFY_SOCKET` is disabled and sends nothing.
 */
export class SdNotifier {
  readonly #socketPath: string | undefined;
  readonly #watchdogUsec: number | undefined;
  readonly #healthCheckTimeoutMs: number;
  readonly #log: Logger;
  #socket: UnixDatagramSocket | undefined;
  #watchdogTimer: NodeJS.Timeout | undefined;
  #pendingCheck: Promise<string | undefined> | undefined;
  #pendingSinceMs = 0;
  #healthy = true;
  #sendErrors = 0;
  #closed = false;

  private constructor(socketPath: string | undefined, watchdogUsec: number | undefined, healthCheckTimeoutMs: number, log: Logger) {
    this.#socketPath = socketPath;
    this.#watchdogUsec = watchdogUsec;
    this.#healthCheckTimeoutMs = healthCheckTimeoutMs;
    this.#log = log;
  }

  /**
   * Reads the notification socket and watchdog interval from the environment, as sd_notify(3) and
   * sd_watchdog_enabled(3) do. `WATCHDOG_USEC` counts only when `WATCHDOG_PID` is unset or names this
   * process. Both variables are removed from `process.env` so that child processes do not inherit them.
   */
  static fromEnvironment(log: Logger, options: SdNotifierOptions = {}): SdNotifier {
    const env = options.env ?? process.env;
    const childLog = log.child({ component: 'sd-notify' });
    let socketPath = env['NOTIFY_SOCKET'] || undefined;
    if (socketPath?.startsWith('@')) {
      // NOTE: unix-dgram copies the path with strncpy, so it cannot address the abstract namespace.
      // systemd's system manager uses the path /run/systemd/notify, which works.
      childLog.warn({ notifySocket: socketPath }, 'NOTIFY_SOCKET names an abstract socket, which is not supported; sending no notifications');
      socketPath = undefined;
    }

    const watchdogUsec = parseWatchdogUsec(env, childLog);
    if (env === process.env) {
      delete process.env['NOTIFY_SOCKET'];
      delete process.env['WATCHDOG_USEC'];
      delete process.env['WATCHDOG_PID'];
    }
    return new SdNotifier(socketPath, watchdogUsec, options.healthCheckTimeoutMs ?? 5000, childLog);
  }

  /** Whether `$NOTIFY_SOCKET` was set, so that messages are sent. */
  get enabled(): boolean {
    return this.#socketPath !== undefined;
  }

  /** Watchdog interval systemd expects pings within, in microseconds, or undefined without a watchdog. */
  get watchdogUsec(): number | undefined {
    return this.#watchdogUsec;
  }

  /** Whether the last health check passed; true before the first one. */
  get healthy(): boolean {
    return this.#healthy;
  }

  /** Sends `READY=1` with a status line. */
  ready(status: string): void {
    this.#send(['READY=1', statusLine(status)]);
  }

  /** Sends a `STATUS=` line. */
  status(status: string): void {
    this.#send([statusLine(status)]);
  }

  /** Sends `STOPPING=1` with a status line. */
  stopping(status: string): void {
    this.#send(['STOPPING=1', statusLine(status)]);
  }

  /**
   * Runs `action` while asking systemd for more start (or stop) time. `EXTEND_TIMEOUT_USEC=` with
   * `extendMs` is sent at once and again every half of `extendMs` until `action` settles. A long index
   * open is then not killed by `TimeoutStartSec` while it makes progress.
   */
  async extendWhile<T>(status: string, extendMs: number, action: () => Promise<T>): Promise<T> {
    const usec = Math.round(extendMs * 1000);
    this.#send([statusLine(status), `EXTEND_TIMEOUT_USEC=${usec}`]);
    const timer = setInterval(() => this.#send([`EXTEND_TIMEOUT_USEC=${usec}`]), Math.max(1, Math.floor(extendMs / 2)));
    timer.unref();
    try {
      return await action();
    } finally {
      clearInterval(timer);
    }
  }

  /**
   * Starts the watchdog: every half of `WATCHDOG_USEC`, runs `check` and sends `WATCHDOG=1` only when
   * it resolves healthy within the health check timeout. A failing or wedged check sends a `STATUS=`
   * line with the reason and no ping, so systemd kills and restarts the daemon after `WatchdogSec`.
   * A check still running at the next tick counts as failed, so the health check timeout is in effect
   * at most half of `WATCHDOG_USEC`. Does nothing without a watchdog.
   */
  startWatchdog(check: HealthCheck, healthyStatus: () => string): void {
    if (!this.enabled || this.#watchdogUsec === undefined || this.#watchdogTimer) {
      return;
    }
    const intervalMs = Math.max(1, Math.floor(this.#watchdogUsec / 2000));
    this.#log.info({ watchdogUsec: this.#watchdogUsec, intervalMs }, 'watchdog started');
    this.#watchdogTimer = setInterval(() => void this.#watchdogTick(check, healthyStatus), intervalMs);
    this.#watchdogTimer.unref();
  }

  /** Stops the watchdog and closes the socket; later calls send nothing. */
  close(): void {
    clearInterval(this.#watchdogTimer);
    this.#watchdogTimer = undefined;
    this.#closed = true;
    this.#socket?.close();
    this.#socket = undefined;
  }

  async #watchdogTick(check: HealthCheck, healthyStatus: () => string): Promise<void> {
    let failure: string | undefined;
    if (this.#pendingCheck) {
      // A check that never settles is not started again, so wedged checks cannot pile up.
      failure = `health check has not finished for ${Date.now() - this.#pendingSinceMs} ms`;
    } else {
      const pending = check().catch((error: unknown) => `health check failed: ${(error as Error).message}`);
      this.#pendingCheck = pending;
      this.#pendingSinceMs = Date.now();
      void pending.finally(() => {
        this.#pendingCheck = undefined;
      });
      failure = await withTimeout(pending, this.#healthCheckTimeoutMs);
    }

    if (failure !== undefined) {
      if (this.#healthy) {
        this.#log.error({ reason: failure }, 'health check failed; watchdog pings stop until it passes');
      }
      this.#healthy = false;
      this.#send([statusLine(`unhealthy: ${failure}`)]);
      return;
    }
    if (!this.#healthy) {
      this.#log.info('health check passes again; watchdog pings resume');
      this.#healthy = true;
    }
    this.#send(['WATCHDOG=1', statusLine(healthyStatus())]);
  }

  #send(assignments: string[]): void {
    if (!this.#socketPath || this.#closed) {
      return;
    }
    this.#socket ??= this.#openSocket();
    const datagram = Buffer.from(assignments.join('\n'), 'utf8');
    this.#socket.send(datagram, 0, datagram.length, this.#socketPath, (error) => {
      if (error) {
        this.#reportSendError(error);
      }
    });
  }

  #openSocket(): UnixDatagramSocket {
    const socket = loadUnixDgram().createSocket('unix_dgram');
    socket.on('error', (error) => this.#reportSendError(error));
    return socket;
  }

  /** Logs the first send error and then every 100th, because a missing socket fails every tick. */
  #reportSendError(error: Error & { code?: number | string }): void {
    this.#sendErrors += 1;
    if (this.#sendErrors === 1 || this.#sendErrors % 100 === 0) {
      this.#log.warn({ err: error.message, code: error.code, socket: this.#socketPath, failures: this.#sendErrors }, 'sending a notification to systemd failed');
    }
  }
}

/** Loads the addon on first use, so a process without `$NOTIFY_SOCKET` never loads native code for it. */
function loadUnixDgram(): UnixDatagramModule {
  return createRequire(import.meta.url)('unix-dgram') as UnixDatagramModule;
}

/** Reads `WATCHDOG_USEC`; an invalid value is logged and disables the watchdog, as sd_watchdog_enabled(3) does. */
function parseWatchdogUsec(env: NodeJS.ProcessEnv, log: Logger): number | undefined {
  const text = env['WATCHDOG_USEC'];
  if (!text) {
    return undefined;
  }
  const pid = env['WATCHDOG_PID'];
  if (pid && pid !== String(process.pid)) {
    log.info({ watchdogPid: pid, pid: process.pid }, 'WATCHDOG_PID names another process; watchdog disabled');
    return undefined;
  }
  const usec = Number(text);
  if (!/^[0-9]+$/.test(text) || usec < 1 || usec > MAX_WATCHDOG_USEC) {
    log.warn({ watchdogUsec: text }, `WATCHDOG_USEC must be an integer from 1 to ${MAX_WATCHDOG_USEC} microseconds; watchdog disabled`);
    return undefined;
  }
  return usec;
}

/** Makes one `STATUS=` assignment: newlines would start a new assignment, so they become spaces. */
function statusLine(status: string): string {
  return `STATUS=${status.replace(/[\r\n]+/g, ' ')}`;
}

function withTimeout(promise: Promise<string | undefined>, timeoutMs: number): Promise<string | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout(`health check did not finish within ${timeoutMs} ms`), timeoutMs);
    timer.unref();
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}
