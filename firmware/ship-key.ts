/**
 * Key step of packaging/build-deb.sh: selects the firmware signing key of the build (release-key.ts),
 * writes its public half and record into OUT_DIR, prints the signing key's path on standard output and
 * a line naming the key on standard error. Exits with 1 and the error when the key is unusable.
 *
 *     node dist/firmware/ship-key.js OUT_DIR
 */

import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { describeKeyKind, RELEASE_KEY_VARIABLE, selectSigningKey, writeShippedKey } from './release-key.js';

/** Top of the checkout: this file runs as dist/firmware/ship-key.js. */
const CHECKOUT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

function main(argv: string[]): number {
  if (argv.length !== 1) {
    process.stderr.write('usage: node dist/firmware/ship-key.js OUT_DIR\n');
    return 2;
  }
  try {
    const signing = selectSigningKey(process.env, CHECKOUT);
    writeShippedKey(signing, argv[0]!);
    const origin =
      signing.kind === 'release'
        ? `from ${RELEASE_KEY_VARIABLE}=${signing.path}`
        : `${signing.path}${signing.created ? ', created by this build' : ''}; set ${RELEASE_KEY_VARIABLE} to build a release`;
    process.stderr.write(`firmware signing key: ${describeKeyKind(signing.kind)} SHA-256 ${signing.fingerprint} (${origin}); the package ships its public half\n`);
    process.stdout.write(`${signing.path}\n`);
    return 0;
  } catch (error) {
    const code = (error as { code?: string }).code;
    process.stderr.write(`ship-key: ${(error as Error).message}${code ? ` (${code})` : ''}\n`);
    return 1;
  }
}

process.exitCode = main(process.argv.slice(2));
