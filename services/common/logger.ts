/**
 * pino loggers: JSON lines on stdout, which journald collects on the appliance.
 */

import { pino, type Logger } from 'pino';

import type { LogLevel } from './config-schema.js';

export type { Logger } from 'pino';

/** Field paths whose values are replaced by "[redacted]" wherever they appear in a log line. */
const REDACTED_PATHS = ['key', 'privateKey', 'passphrase', 'password', 'pairingCode', 'token', '*.privateKey', '*.password'];

/**
 * Creates the root logger of a daemon or tool.
 *
 * @param service - daemon name, written into every line as `service`
 * @param destination - file descriptor to write to; 1 (stdout) for daemons, 2 (stderr) for cdrctl
 */
export function createLogger(service: string, level: LogLevel, destination: 1 | 2 = 1): Logger {
  return pino(
    {
      level,
      base: { service, pid: process.pid },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      formatters: { level: (label) => ({ level: label }) },
    },
    pino.destination({ fd: destination, sync: true }),
  );
}
