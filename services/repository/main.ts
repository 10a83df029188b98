/**
 * Entry point of imp-cdr-repository.
 *
 *     node dist/services/repository/main.js [--config PATH] [--dev]
 *
 * `--dev` uses `var/cdr.yaml` under the working folder, writing it from the embedded defaults on first
 * run, so every path is under `./var` and every listener on 127.0.0.1.
 */

import { parseArgs } from 'node:util';

import { DEVELOPMENT_CONFIG_PATH, ensureDevelopmentConfig, loadConfig, PRODUCTION_CONFIG_PATH } from '../common/config.js';
import { CdrError, isCdrError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { SdNotifier } from '../common/sd-notify.js';
import { Repository } from './repository.js';

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
    process.stderr.write(`imp-cdr-repository: ${(error as Error).message}\n`);
    process.exit(isCdrError(error) ? EXIT_CONFIG : 1);
  }

  const log = createLogger('repository', loaded.config.log.level);
  log.info({ config: loaded.path }, 'starting');
  const notifier = SdNotifier.fromEnvironment(log, { healthCheckTimeoutMs: loaded.config.supervision.healthCheckTimeoutMs });
  const repository = new Repository(loaded.config, log, notifier);

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    notifier.stopping(`stopping on ${signal}`);
    repository.stop().then(
      () => {
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
    await repository.start();
    notifier.ready(repository.statusLine());
    notifier.startWatchdog(() => repository.checkHealth(), () => repository.statusLine());
  } catch (error) {
    const message = error instanceof CdrError ? `${error.code}: ${error.message}` : String(error);
    log.fatal({ err: error }, 'start failed');
    process.stderr.write(`imp-cdr-repository: start failed: ${message}\n`);
    notifier.status(`start failed: ${message}`);
    await repository.stop().catch(() => undefined);
    process.exit(1);
  }
}

await main();
