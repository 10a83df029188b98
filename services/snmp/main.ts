/**
 * Entry point of imp-cdr-snmp, the IMP-CDR-MIB agent.
 *
 *     node dist/services/snmp/main.js [--config PATH] [--dev]
 *
 * `snmp.mode` in the configuration selects the AgentX subagent (default, under snmpd) or the
 * standalone SNMPv3 agent. The process reads the repository through its control socket. While the
 * repository is down it keeps serving requests, with impCdrNodeState unreachable.
 */

import { parseArgs } from 'node:util';

import { DEVELOPMENT_CONFIG_PATH, loadConfig, PRODUCTION_CONFIG_PATH } from '../common/config.js';
import { CdrError, isCdrError } from '../common/errors.js';
import { createLogger } from '../common/logger.js';
import { SdNotifier } from '../common/sd-notify.js';
import { SnmpService } from './service.js';
import { snmpSettingsOf } from './settings.js';

/** Exit status for configuration errors (EX_CONFIG in sysexits.h); systemd units do not restart on it. */
const EXIT_CONFIG = 78;

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { config: { type: 'string' }, dev: { type: 'boolean', default: false } },
    strict: true,
  });
  const configPath = values.config ?? (values.dev ? DEVELOPMENT_CONFIG_PATH : PRODUCTION_CONFIG_PATH);

  let config;
  let settings;
  try {
    config = loadConfig(configPath).config;
    settings = snmpSettingsOf(config);
  } catch (error) {
    process.stderr.write(`imp-cdr-snmp: ${(error as Error).message}\n`);
    process.exit(isCdrError(error) ? EXIT_CONFIG : 1);
  }

  const log = createLogger('snmp', config.log.level);
  log.info({ config: configPath, mode: settings.mode }, 'starting');
  const service = new SnmpService(config, settings, log);
  const notifier = SdNotifier.fromEnvironment(log, { healthCheckTimeoutMs: config.supervision.healthCheckTimeoutMs });

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) {
      log.warn({ signal }, 'second signal during shutdown; exiting now');
      process.exit(1);
    }
    stopping = true;
    log.info({ signal }, 'stopping');
    notifier.stopping(`stopping on ${signal}`);
    const timer = setTimeout(() => {
      log.error({ timeoutMs: config.shutdown.timeoutMs, code: 'ERR_SHUTDOWN_TIMEOUT' }, 'shutdown timed out; exiting');
      process.exit(1);
    }, config.shutdown.timeoutMs);
    service.stop().then(
      () => {
        clearTimeout(timer);
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
    await service.start();
    await service.ready();
    log.info({ engineId: service.engineId }, 'snmp agent ready');
    // The agent answers from its last snapshot even while the repository is down, so the watchdog
    // check is only that the event loop runs.
    notifier.ready(`serving IMP-CDR-MIB (${settings.mode})`);
    notifier.startWatchdog(async () => undefined, () => `serving IMP-CDR-MIB (${settings.mode})`);
  } catch (error) {
    const message = error instanceof CdrError ? `${error.code}: ${error.message}` : String(error);
    log.fatal({ err: error }, 'start failed');
    process.stderr.write(`imp-cdr-snmp: start failed: ${message}\n`);
    await service.stop().catch(() => undefined);
    process.exit(1);
  }
}

await main();
