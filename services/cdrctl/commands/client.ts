/**
 * `cdrctl client enroll NAME --out DIR [--days N]`: a key and a client certificate for an IMP. The key is
 * created here; only the certificate request goes to the repository.
 */

import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import type { ControlClient } from '../../../modules/protocol/control-client.js';
import { checkClientName, createCertificateRequest } from '../../repository/tls-material.js';
import { EXIT_SUCCESS, usageError, withControl, type Command, type CommandContext } from '../command.js';

export const clientCommand: Command = {
  name: 'client',
  usage: [
    'client enroll NAME --out DIR [--days N]',
    '                                      create a key and a client certificate for IMP NAME in DIR',
  ],
  async run(context, args) {
    const { values, positionals } = parseArgs({
      args,
      options: { out: { type: 'string' }, days: { type: 'string' } },
      allowPositionals: true,
      strict: true,
    });
    return withControl(context, (control) => enroll(context, control, positionals, values.out, values.days));
  },
};

async function enroll(context: CommandContext, client: ControlClient, args: string[], out: string | undefined, days: string | undefined): Promise<number> {
  const [subcommand, name] = args;
  if (subcommand !== 'enroll' || !name || args.length !== 2) {
    throw usageError(subcommand === 'enroll' ? `client enroll needs exactly one NAME, got ${args.length - 1}` : 'client needs the subcommand enroll');
  }
  if (!out) {
    throw usageError('client enroll needs --out DIR');
  }
  const validDays = days === undefined ? 0 : Number(days);
  if (days !== undefined && (!Number.isInteger(validDays) || validDays < 1 || validDays > 3650)) {
    throw usageError(`--days must be an integer from 1 to 3650, got "${days}"`);
  }

  try {
    checkClientName(name);
  } catch (error) {
    throw usageError((error as Error).message);
  }
  const request = await createCertificateRequest(name);
  const { enroll } = await client.call({ enroll: { name, csrPem: request.csrPem, validDays } });

  mkdirSync(out, { recursive: true, mode: 0o700 });
  const keyPath = join(out, 'client.key');
  writeFileSync(keyPath, request.keyPem, { mode: 0o600 });
  chmodSync(keyPath, 0o600);
  writeFileSync(join(out, 'client.pem'), enroll!.certificatePem!);
  writeFileSync(join(out, 'ca.pem'), enroll!.caCertificatePem!);
  context.stdout(
    `enrolled ${name}: ${join(out, 'client.pem')}, ${keyPath}, ${join(out, 'ca.pem')}\n` +
      `certificate SHA-256 fingerprint ${enroll!.fingerprintSha256}, valid until ${new Date(Number(enroll!.notAfterMs)).toISOString()}\n`,
  );
  return EXIT_SUCCESS;
}

