/**
 * The start and stop sequence every IMP-CDR daemon shares: command line, configuration, logger,
 * sd_notify, signal handling and exit statuses.
 *
 *     node dist/services/NAME/main.js [--config PATH] [--dev]
 *
 * `--dev` uses `var/cdr.yaml` under the working folder, writing it from the embedded defaults on first
 * run, so every path is under `./var` and every listener on 127.0.0.1.
 */

import { parseArgs } from 'node:util';

import { DEVELOPMENT_CONFIG_PATH, ensureDevelopmentConfig, loadConfig, PRODUCTION_CONFIG_PATH, type CdrConfig } from './config.js';
import { CdrError, isCdrError } from './errors.js';
import { createLogger, type Logger } from './logger.js';
import { SdNotifier, type HealthCheck } from './sd-notify.js';

/** Exit status for configuration errors (EX_CONFIG in sysexits.h); systemd units do not restart on it. */
export const EXIT_CONFIG = 78;

/** The parts of a daemon the shared sequence drives. */
export interface Daemon {
  start(): Promise<void>;
  stop(): Promise<void>;
  /** One line for `systemctl status`, sent with READY=1 and each watchdog ping. */
  statusLine(): string;
  /** The watchdog pings systemd only while this resolves to undefined. */
  checkHealth: HealthCheck;
}

export interface DaemonOptions {
  /** Short service name: the logger's `service` field; the program is `imp-cdr-NAME`. */
  name: string;
  /**
   * Builds the daemon from the checked configuration. A `CdrError` thrown here is a configuration
   * error: the process exits with EXIT_CONFIG.
   */
  create(config: Readonly<CdrConfig>, log: Logger, notifier: SdNotifier): Daemon;
  /** Bound on the whole stop, after which the process exits with 1; none when undefined. */
  stopTimeoutMs?: (config: Readonly<CdrConfig>) => number;
}

/** Runs a daemon until SIGTERM or SIGINT; never returns normally, because it ends with `process.exit`. */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  const program = `imp-cdr-${options.name}`;
  const { values } = parseArgs({
    options: { config: { type: 'string' }, dev: { type: 'boolean', default: false } },
    strict: true,
  });

  const configPath = values.config ?? (values.dev ? DEVELOPMENT_CONFIG_PATH : PRODUCTION_CONFIG_PATH);
  if (values.dev && ensureDevelopmentConfig(configPath)) {
    process.stderr.write(`wrote development configuration ${configPath} from the embedded defaults\n`);
  }

  let config: Readonly<CdrConfig>;
  let log: Logger;
  let notifier: SdNotifier;
  let daemon: Daemon;
  try {
    const loaded = loadConfig(configPath);
    config = loaded.config;
    log = createLogger(options.name, config.log.level);
    log.info({ config: loaded.path }, 'starting');
    notifier = SdNotifier.fromEnvironment(log, { healthCheckTimeoutMs: config.supervision.healthCheckTimeoutMs });
    daemon = options.create(config, log, notifier);
  } catch (error) {
    process.stderr.write(`${program}: ${(error as Error).message}\n`);
    process.exit(isCdrError(error) ? EXIT_CONFIG : 1);
  }

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    notifier.stopping(`stopping on ${signal}`);

    const timeoutMs = options.stopTimeoutMs?.(config);
    const timer =
      timeoutMs === undefined
        ? undefined
        : setTimeout(() => {
            log.error({ timeoutMs, code: 'ERR_SHUTDOWN_TIMEOUT' }, 'shutdown timed out; exiting');
            process.exit(1);
          }, timeoutMs);
    daemon.stop().then(
      () => {
        clearTimeout(timer);
        log.info('stopped');
        notifier.close();
        process.exit(0);
      },
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));

  try {
    await daemon.start();
    notifier.ready(daemon.statusLine());
    notifier.startWatchdog(daemon.checkHealth, () => daemon.statusLine());
  } catch (error) {
    const message = error instanceof CdrError ? `${error.code}: ${error.message}` : String(error);
    log.fatal({ err: error }, 'start failed');
    process.stderr.write(`${program}: start failed: ${message}\n`);
    notifier.status(`start failed: ${message}`);
    await daemon.stop().catch(() => undefined);
    process.exit(1);
  }
}
