/**
 * The firmware manifest: what a bundle contains and where it may be installed. The manifest is JSON;
 * its exact bytes are what the Ed25519 signature covers, so it is never re-serialised before checking.
 */

import { Ajv } from 'ajv';

import { CdrError } from '../services/common/errors.js';

/** Manifest format this code reads and writes. */
export const MANIFEST_FORMAT = 1;

/** One payload file of the bundle, stored as `payload/NAME`. */
export interface PayloadEntry {
  /** File name: a Debian package name such as `imp-cdr_0.2.0_amd64.deb`. */
  name: string;
  type: 'deb';
  bytes: number;
  /** SHA-256 of the file, lowercase hex. */
  sha256: string;
}

export interface FirmwareManifest {
  format: typeof MANIFEST_FORMAT;
  product: 'imp-cdr';
  /** Product version, MAJOR.MINOR.PATCH. */
  version: string;
  /** Hardware models (profile names such as O550) the bundle may be installed on. */
  models: string[];
  /** Oldest OOS firmware version IMP clients may run with this version, MAJOR.MINOR[.PATCH]. */
  minOosVersion: string;
  /** When the bundle was built, ISO 8601. */
  created: string;
  payloads: PayloadEntry[];
}

const MANIFEST_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['format', 'product', 'version', 'models', 'minOosVersion', 'created', 'payloads'],
  properties: {
    format: { const: MANIFEST_FORMAT },
    product: { const: 'imp-cdr' },
    version: { type: 'string', pattern: '^[0-9]{1,5}\\.[0-9]{1,5}\\.[0-9]{1,5}$' },
    models: { type: 'array', minItems: 1, maxItems: 16, uniqueItems: true, items: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9 ._-]{0,63}$' } },
    minOosVersion: { type: 'string', pattern: '^[0-9]{1,5}\\.[0-9]{1,5}(\\.[0-9]{1,5})?$' },
    created: { type: 'string', minLength: 1, maxLength: 64 },
    payloads: {
      type: 'array',
      minItems: 1,
      maxItems: 1,
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['name', 'type', 'bytes', 'sha256'],
        properties: {
          name: { type: 'string', pattern: '^imp-cdr_[0-9A-Za-z.+~-]+_[a-z0-9]+\\.deb$' },
          type: { const: 'deb' },
          bytes: { type: 'integer', minimum: 1 },
          sha256: { type: 'string', pattern: '^[0-9a-f]{64}$' },
        },
      },
    },
  },
} as const;

const validate = new Ajv({ allErrors: false }).compile(MANIFEST_SCHEMA);

/** Parses and checks manifest bytes. @throws CdrError `ERR_FW_MANIFEST_INVALID` naming the field */
export function parseManifest(bytes: Buffer): FirmwareManifest {
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (error) {
    throw new CdrError('ERR_FW_MANIFEST_INVALID', `firmware manifest is not valid JSON: ${(error as Error).message}`, { cause: error });
  }
  if (!validate(value)) {
    const first = validate.errors?.[0];
    const where = first?.instancePath || '(top level)';
    throw new CdrError('ERR_FW_MANIFEST_INVALID', `firmware manifest ${where} ${first?.message ?? 'is invalid'}; rebuild the bundle with cdrctl firmware build`, {
      details: { path: where },
    });
  }
  return value as FirmwareManifest;
}

/** Compares MAJOR.MINOR[.PATCH] versions: negative when `left` is older, 0 when equal, positive when newer. */
export function compareVersions(left: string, right: string): number {
  const leftParts = left.split('.').map(Number);
  const rightParts = right.split('.').map(Number);
  for (let index = 0; index < 3; index++) {
    const difference = (leftParts[index] ?? 0) - (rightParts[index] ?? 0);
    if (difference !== 0) {
      return difference;
    }
  }
  return 0;
}
