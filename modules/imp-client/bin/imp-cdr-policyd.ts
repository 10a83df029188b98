#!/usr/bin/env node
/**
 * imp-cdr-policyd: the Postfix SMTPD access policy server of IMP-CDR. Reads the `impClient` and
 * `policyd` sections of the configuration, connects to the repository through the IMP client module,
 * and listens until SIGTERM or SIGINT.
 */

import { readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { loadConfig, resolveUnder } from '../../../services/common/config.js';
import { CdrError } from '../../../services/common/errors.js';
import { createLogger } from '../../../services/common/logger.js';
import { ImpClient } from '../imp-client.js';
import { PolicyServer } from '../policyd/policy-server.js';

const USAGE = `Usage: imp-cdr-policyd --config FILE

Serves the Postfix policy delegation protocol on policyd.host:policyd.port and answers each request
with the action configured for the repository's verdict on client_address. Postfix main.cf:

  smtpd_recipient_restrictions = ..., check_policy_service inet:127.0.0.1:10040
`;

async function main(argv: string[]): Promise<void> {
  const { values } = parseArgs({ args: argv, options: { config: { type: 'string' }, help: { type: 'boolean' } } });
  if (values.help) {
    process.stdout.write(USAGE);
    return;
  }
  if (!values.config) {
    throw new CdrError('ERR_CLI_USAGE', '--config FILE is required: a cdr.yaml with impClient and policyd sections');
  }

  const { config } = loadConfig(values.config);
  const log = createLogger('imp-cdr-policyd', config.log.level);
  const bundleDir = resolveUnder(config.paths.state, config.impClient.bundleDir);
  let tls: { ca: string; cert: string; key: string };
  try {
    tls = {
      ca: readFileSync(join(bundleDir, 'ca.pem'), 'utf8'),
      cert: readFileSync(join(bundleDir, 'client.pem'), 'utf8'),
      key: readFileSync(join(bundleDir, 'client.key'), 'utf8'),
    };
  } catch (error) {
    throw new CdrError('ERR_IMPCLIENT_STATE', `client bundle ${bundleDir} is incomplete (${(error as Error).message}); write it with cdrctl client enroll NAME --out ${bundleDir}`, {
      cause: error,
    });
  }
  const commonName = /CN=([^\n,]+)/.exec(new X509Certificate(tls.cert).subject)?.[1] ?? '';
  const impId = config.impClient.impId || commonName;

  const client = new ImpClient({
    nodes: config.impClient.nodes,
    tls,
    hello: { impId, clusterId: config.impClient.clusterId, model: config.impClient.model, oosVersion: config.impClient.oosVersion },
    stateDir: resolveUnder(config.paths.state, config.impClient.spoolDir),
    intervalMs: config.impClient.intervalSeconds * 1000,
    spool: { maxBatches: config.impClient.spoolMaxBatches, maxBytes: config.impClient.spoolMaxBytes },
    logger: log,
  });
  client.start();

  const server = new PolicyServer({
    host: config.policyd.host,
    port: config.policyd.port,
    actions: config.policyd,
    lookupTimeoutMs: config.policyd.lookupTimeoutMs,
    client,
    logger: log,
  });
  const port = await server.listen();
  log.info({ policy: `${config.policyd.host}:${port}`, impId }, 'policyd ready');

  const stop = async (signal: string) => {
    log.info({ signal }, 'policyd stopping');
    await server.close();
    await client.stop(config.shutdown.timeoutMs);
    process.exit(0);
  };
  process.once('SIGTERM', () => void stop('SIGTERM'));
  process.once('SIGINT', () => void stop('SIGINT'));
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const code = (error as { code?: string }).code;
  process.stderr.write(`imp-cdr-policyd: ${code ? `${code}: ` : ''}${(error as Error).message}\n`);
  process.exit(code === 'ERR_CLI_USAGE' || String(code).startsWith('ERR_PARSE_ARGS') ? 2 : 1);
});
