/**
 * Entry point of imp-cdr-pairing.
 *
 *     node dist/services/pairing/main.js [--config PATH] [--dev]
 *
 * It reads the same configuration file as the repository: the `pairing` section, the paths, and the
 * repository's control socket.
 */

import { parseArgs } from 'node:util';

import { DEVELOPMENT_CONFIG_PATH, ensureDevelopmentConfig, loadConfig, PRODUCTION_CONFIG_PATH } from '../common/config.js';
import { CdrError, isCdrError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { SdNotifier } from '../common/sd-notify.js';
import { PairingDaemon } from './daemon.js';

/** Exit status for configuration errors (EX_CONFIG in sysexits.h); systemd units do not restart on it. */
const EXIT_CONFIG = 78;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string' }, dev: { type: 'boolean', default: false } },
    strict: true,
  });

  const configPath = values.config ?? (values.dev ? DEVELOPMENT_CONFIG_PATH : PRODUCTION_CONFIG_PATH);
  if (values.dev && ensureDevelopmentConfig(configPath)) {
    process.stderr.write(`wrote development configuration ${configPath} from the embedded defaults\n`);
  }

  let loaded;
  try {
    loaded = loadConfig(configPath);
  } catch (error) {
    process.stderr.write(`imp-cdr-pairing: ${(error as Error).message}\n`);
    process.exit(isCdrError(error) ? EXIT_CONFIG : 1);
  }

  const log = createLogger('pairing', loaded.config.log.level);
  log.info({ config: loaded.path }, 'starting');
  const daemon = new PairingDaemon(loaded.config, log);
  const notifier = SdNotifier.fromEnvironment(log, { healthCheckTimeoutMs: loaded.config.supervision.healthCheckTimeoutMs });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    notifier.stopping(`stopping on ${signal}`);
    daemon.stop().then(
      () => {
        log.info('stopped');
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
    // The SSH listener accepts only during a pairing window; the watchdog check is that the event loop runs.
    notifier.ready('waiting for a pairing window');
    notifier.startWatchdog(async () => undefined, () => 'waiting for a pairing window');
  } catch (error) {
    const message = error instanceof CdrError ? `${error.code}: ${error.message}` : String(error);
    log.fatal({ err: error }, 'start failed');
    process.stderr.write(`imp-cdr-pairing: start failed: ${message}\n`);
    await daemon.stop().catch(() => undefined);
    process.exit(1);
  }
}

await main();
