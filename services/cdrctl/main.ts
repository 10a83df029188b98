/**
 * cdrctl: the command line of administrators and technicians. It talks to the repository through the
 * control socket, so it needs no access to the index itself.
 */

import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { DEVELOPMENT_CONFIG_PATH, loadConfig, PRODUCTION_CONFIG_PATH, resolveUnder } from '../common/config.js';
import { CdrError } from '../common/errors.js';
import { kindFromWire, kindToWire, OBJECT_KINDS, verdictFromWire, type ObjectKindName } from '../../modules/protocol/constants.js';
import { COUNTER_FIELDS } from '../../modules/protocol/counters.js';
import { ControlClient } from '../../modules/protocol/control-client.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import { createCertificateRequest } from '../repository/tls-material.js';

const USAGE = `usage: cdrctl [--config FILE | --socket PATH] COMMAND

commands:
  status [--json]                       node state, traffic, objects and connected IMPs
  lookup [--json] KIND KEY [KEY ...]    reputation of keys; KIND is ip, network, domain or user
  client enroll NAME --out DIR [--days N]
                                        create a key and a client certificate for IMP NAME in DIR
  policy show                           print the reputation policy in force
  policy set FILE                       validate FILE and make it the policy in force

options:
  --config FILE   configuration to find the control socket in (default: $IMP_CDR_CONFIG,
                  then ${PRODUCTION_CONFIG_PATH} if it exists, then ./${DEVELOPMENT_CONFIG_PATH})
  --socket PATH   control socket path; overrides --config
`;

/** Exit statuses: 0 success, 1 failure reported by the repository or the system, 2 bad command line. */
const EXIT_FAILURE = 1;
const EXIT_USAGE = 2;

async function main(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      socket: { type: 'string' },
      json: { type: 'boolean', default: false },
      out: { type: 'string' },
      days: { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
    allowPositionals: true,
    strict: true,
  });

  if (values.help || positionals.length === 0) {
    process.stdout.write(USAGE);
    return values.help ? 0 : EXIT_USAGE;
  }

  const [command, ...rest] = positionals;
  const client = await ControlClient.connect(socketPath(values.socket, values.config));
  try {
    switch (command) {
      case 'status':
        return await status(client, values.json);
      case 'lookup':
        return await lookup(client, rest, values.json);
      case 'client':
        return await clientCommand(client, rest, values.out, values.days);
      case 'policy':
        return await policy(client, rest);
      default:
        throw usage(`unknown command "${command}"`);
    }
  } finally {
    client.close();
  }
}

function socketPath(socket: string | undefined, config: string | undefined): string {
  if (socket) {
    return resolve(socket);
  }
  const configPath =
    config ?? process.env['IMP_CDR_CONFIG'] ?? (existsSync(PRODUCTION_CONFIG_PATH) ? PRODUCTION_CONFIG_PATH : DEVELOPMENT_CONFIG_PATH);
  const { config: loaded } = loadConfig(configPath);
  return resolveUnder(loaded.paths.run, loaded.control.socket);
}

async function status(client: ControlClient, json: boolean): Promise<number> {
  const { status } = await client.call({ status: {} });
  const value = statusToJson(status!);
  if (json) {
    process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
    return 0;
  }

  const s = status!;
  const objects = s.objects!;
  const traffic = s.traffic!;
  const lines = [
    `node ${s.nodeId} (${s.role}), state ${s.state}, version ${s.softwareVersion}, up ${s.uptimeSeconds} s`,
    `IMP listener ${s.impListen}, policy version ${s.policyVersion}`,
    `objects: ip ${objects.ip}, network ${objects.network}, domain ${objects.domain}, user ${objects.user}; index ${s.indexBytes} bytes`,
    `traffic: ${traffic.observeBatches} Observe batches (${traffic.observations} observations, ${traffic.duplicateBatches} duplicates), ` +
      `${traffic.lookups} lookups (${traffic.lookupKeys} keys), ${traffic.errors} errors; cache ${traffic.cacheHits} hits, ${traffic.cacheMisses} misses`,
    `clients: ${(s.clients ?? []).length}`,
    ...(s.clients ?? []).map(
      (c) =>
        `  ${c.impId} (cluster ${c.clusterId}) from ${c.address}, ${c.model} OOS ${c.oosVersion}, since ` +
        `${new Date(Number(c.connectedSinceMs)).toISOString()}, ${c.observations} observations, ${c.lookups} lookups`,
    ),
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
  return 0;
}

async function lookup(client: ControlClient, args: string[], json: boolean): Promise<number> {
  const [kindText, ...keys] = args;
  if (!kindText || keys.length === 0) {
    throw usage('lookup needs KIND and at least one KEY');
  }
  if (!OBJECT_KINDS.includes(kindText as ObjectKindName)) {
    throw usage(`unknown kind "${kindText}"; use ${OBJECT_KINDS.join(', ')}`);
  }
  const kind = kindText as ObjectKindName;

  const { lookup: response } = await client.call({ lookup: { keys: keys.map((key) => ({ kind: kindToWire(kind), key })) } });
  const results = (response!.results ?? []).map((result, index) => lookupResultToJson(kind, keys[index]!, result));
  const failed = results.filter((result) => 'error' in result);

  if (json) {
    const output = results.length === 1 ? results[0] : results;
    process.stdout.write(`${JSON.stringify(output, null, 2)}\n`);
  } else {
    for (const result of results.filter((entry) => !('error' in entry))) {
      process.stdout.write(formatLookup(result));
    }
  }
  for (const result of failed) {
    const error = (result as { error: { message: string } }).error;
    process.stderr.write(`cdrctl: ${error.message}\n`);
  }
  return failed.length > 0 ? EXIT_FAILURE : 0;
}

type LookupJson =
  | {
      kind: string;
      key: string;
      score: number;
      verdict: string;
      reasons: string[];
      counters: Record<string, number>;
      listings: unknown[];
      ttlSeconds: number;
      policyVersion: number;
      firstSeen: string | null;
      lastSeen: string | null;
    }
  | { kind: string; key: string; error: { code: number; message: string } };

function lookupResultToJson(kind: ObjectKindName, requested: string, result: impcdr.v1.ILookupResult): LookupJson {
  if (result.error) {
    return { kind, key: requested, error: { code: result.error.code ?? 0, message: result.error.message ?? '' } };
  }
  const reputation = result.reputation!;
  const counters = Object.fromEntries(COUNTER_FIELDS.map((field) => [field, Number(reputation.counters?.[field] ?? 0)]));
  const time = (ms: number | null | undefined) => (ms ? new Date(Number(ms)).toISOString() : null);
  return {
    kind: kindFromWire(reputation.object?.kind) ?? kind,
    key: reputation.object?.key ?? requested,
    score: reputation.score ?? 0,
    verdict: verdictFromWire(reputation.verdict) ?? 'neutral',
    reasons: reputation.reasons ?? [],
    counters,
    listings: reputation.listings ?? [],
    ttlSeconds: reputation.ttlSeconds ?? 0,
    policyVersion: reputation.policyVersion ?? 0,
    firstSeen: time(reputation.firstSeenMs),
    lastSeen: time(reputation.lastSeenMs),
  };
}

function formatLookup(result: LookupJson): string {
  if ('error' in result) {
    return '';
  }
  const counters = Object.entries(result.counters)
    .filter(([, value]) => value > 0)
    .map(([field, value]) => `${field} ${value}`)
    .join(', ');
  return [
    `${result.kind} ${result.key}: ${result.verdict} (score ${result.score}), policy ${result.policyVersion}, ttl ${result.ttlSeconds} s`,
    `  reasons: ${result.reasons.length > 0 ? result.reasons.join('; ') : 'none'}`,
    `  counters: ${counters || 'none'}`,
    `  seen: ${result.firstSeen ?? 'never'} to ${result.lastSeen ?? 'never'}`,
    `  listings: ${result.listings.length > 0 ? JSON.stringify(result.listings) : 'none'}`,
    '',
  ].join('\n');
}

async function clientCommand(client: ControlClient, args: string[], out: string | undefined, days: string | undefined): Promise<number> {
  const [subcommand, name] = args;
  if (subcommand !== 'enroll' || !name || args.length !== 2) {
    throw usage('use: cdrctl client enroll NAME --out DIR [--days N]');
  }
  if (!out) {
    throw usage('client enroll needs --out DIR');
  }
  const validDays = days === undefined ? 0 : Number(days);
  if (days !== undefined && (!Number.isInteger(validDays) || validDays < 1 || validDays > 3650)) {
    throw usage(`--days must be an integer from 1 to 3650, got "${days}"`);
  }

  const request = await createCertificateRequest(name);
  const { enroll } = await client.call({ enroll: { name, csrPem: request.csrPem, validDays } });

  mkdirSync(out, { recursive: true, mode: 0o700 });
  const keyPath = join(out, 'client.key');
  writeFileSync(keyPath, request.keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(join(out, 'client.pem'), enroll!.certificatePem!);
  writeFileSync(join(out, 'ca.pem'), enroll!.caCertificatePem!);
  process.stdout.write(
    `enrolled ${name}: ${join(out, 'client.pem')}, ${keyPath}, ${join(out, 'ca.pem')}\n` +
      `certificate SHA-256 fingerprint ${enroll!.fingerprintSha256}, valid until ${new Date(Number(enroll!.notAfterMs)).toISOString()}\n`,
  );
  return 0;
}

async function policy(client: ControlClient, args: string[]): Promise<number> {
  const [subcommand, file] = args;
  if (subcommand === 'show' && args.length === 1) {
    const { policy: document } = await client.call({ policyShow: {} });
    process.stdout.write(`# version ${document!.version}, applied ${new Date(Number(document!.appliedMs)).toISOString()}\n${document!.yaml}`);
    return 0;
  }
  if (subcommand === 'set' && file && args.length === 2) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new CdrError('ERR_CLI_USAGE', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
    const { policy: document } = await client.call({ policySet: { yaml: text, sourceName: file } });
    process.stdout.write(`policy version ${document!.version} is in force\n`);
    return 0;
  }
  throw usage('use: cdrctl policy show | cdrctl policy set FILE');
}

function statusToJson(status: impcdr.v1.IStatus): unknown {
  return {
    nodeId: status.nodeId,
    softwareVersion: status.softwareVersion,
    role: status.role,
    state: status.state,
    startedAt: new Date(Number(status.startedMs)).toISOString(),
    uptimeSeconds: Number(status.uptimeSeconds),
    impListen: status.impListen,
    policyVersion: status.policyVersion,
    objects: {
      ip: Number(status.objects?.ip ?? 0),
      network: Number(status.objects?.network ?? 0),
      domain: Number(status.objects?.domain ?? 0),
      user: Number(status.objects?.user ?? 0),
    },
    indexBytes: Number(status.indexBytes),
    traffic: Object.fromEntries(
      ['observeBatches', 'observations', 'duplicateBatches', 'lookups', 'lookupKeys', 'errors', 'cacheHits', 'cacheMisses'].map((field) => [
        field,
        Number((status.traffic as Record<string, unknown> | null)?.[field] ?? 0),
      ]),
    ),
    clients: (status.clients ?? []).map((client) => ({
      connectionId: client.connectionId,
      impId: client.impId,
      clusterId: client.clusterId,
      address: client.address,
      model: client.model,
      oosVersion: client.oosVersion,
      connectedSince: new Date(Number(client.connectedSinceMs)).toISOString(),
      observations: Number(client.observations),
      lookups: Number(client.lookups),
    })),
  };
}

function usage(message: string): CdrError {
  return new CdrError('ERR_CLI_USAGE', message);
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error: unknown) => {
    const code = error instanceof CdrError ? error.code : undefined;
    const message = error instanceof Error ? error.message : String(error);
    process.stderr.write(`cdrctl: ${message}${code ? ` (${code})` : ''}\n`);
    if (code === 'ERR_CLI_USAGE' || (error as { code?: string }).code?.startsWith('ERR_PARSE_ARGS')) {
      process.stderr.write(USAGE);
      process.exit(EXIT_USAGE);
    }
    process.exit(EXIT_FAILURE);
  },
);
