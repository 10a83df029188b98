/**
 * The firmware signing key of a package build and the public key that the package ships.
 *
 * A release build signs with the Ed25519 private key (PEM) named by `IMP_CDR_RELEASE_KEY`. A
 * development build, without that variable, signs with a key pair of its own, created once under
 * `var/firmware-dev-key/` of the checkout (git ignores `var/`). Either way the package ships the public
 * half as `/opt/imp-cdr/firmware/release-key.pem`, the default `firmware.publicKey`, with a record of
 * its kind beside it:
 *
 *     release-key.pem     the public key, SPKI PEM
 *     release-key.json    {"kind": "release" | "development", "fingerprint": "<SHA-256 of the DER key, hex>"}
 */

import { createPublicKey, type KeyObject } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { CdrError } from '../services/common/errors.js';
import { generateSigningKeys, keyFingerprint, loadPrivateKey, loadPublicKey } from './bundle.js';

/** Environment variable naming the release signing key file. */
export const RELEASE_KEY_VARIABLE = 'IMP_CDR_RELEASE_KEY';

/** Folder of the development key pair, relative to the checkout. */
export const DEVELOPMENT_KEY_DIR = 'var/firmware-dev-key';

/** Origin of a shipped public key: the release key, or a key pair of a development build. */
export type KeyKind = 'release' | 'development';

/** A public key that bundles are verified with, and what is known of its origin. */
export interface TrustedKey {
  key: KeyObject;
  path: string;
  /** SHA-256 of the DER public key, hex. */
  fingerprint: string;
  /** The kind recorded beside the key by the package build; `unrecorded` when no record matches the key. */
  kind: KeyKind | 'unrecorded';
}

/** The key a package build signs with. */
export interface SigningKey {
  path: string;
  key: KeyObject;
  kind: KeyKind;
  fingerprint: string;
  /** Whether this build created the development key pair. */
  created: boolean;
}

/** Returns the record file beside a public key: `release-key.pem` has `release-key.json`. */
export function keyRecordPath(publicKeyPath: string): string {
  return `${publicKeyPath.replace(/\.pem$/, '')}.json`;
}

/**
 * Selects the signing key of a package build: the file named by `IMP_CDR_RELEASE_KEY` when it is set,
 * otherwise the development key under `checkout`, created when missing.
 *
 * @throws CdrError `ERR_FW_KEY_INVALID` when the file cannot be read or is not an Ed25519 private key
 */
export function selectSigningKey(env: NodeJS.ProcessEnv, checkout: string): SigningKey {
  const releasePath = env[RELEASE_KEY_VARIABLE];
  if (releasePath) {
    const key = loadSigningKey(releasePath);
    return { path: releasePath, key, kind: 'release', fingerprint: keyFingerprint(key), created: false };
  }

  const dir = join(checkout, DEVELOPMENT_KEY_DIR);
  const path = join(dir, 'signing-key.pem');
  let created = false;
  if (!existsSync(path)) {
    try {
      generateSigningKeys(dir);
    } catch (error) {
      throw new CdrError('ERR_FW_KEY_INVALID', `cannot create the development signing key in ${dir}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}; remove ${dir} and build again`, {
        cause: error,
        details: { path: dir },
      });
    }
    created = true;
  }
  const key = loadPrivateKey(path);
  const signing: SigningKey = { path, key, kind: 'development', fingerprint: keyFingerprint(key), created };
  // The record beside the public half lets `cdrctl firmware verify` in the checkout name the key kind.
  writeShippedKey(signing, dir);
  return signing;
}

/** Reads a signing key, naming the variable when the file is a public key or unreadable. */
function loadSigningKey(path: string): KeyObject {
  if (existsSync(path) && /-----BEGIN PUBLIC KEY-----/.test(readFileSync(path, 'utf8'))) {
    throw new CdrError('ERR_FW_KEY_INVALID', `${RELEASE_KEY_VARIABLE}=${path} is a public key; it must name the Ed25519 signing key (private, PEM), whose public half the build ships`, {
      details: { path },
    });
  }
  try {
    return loadPrivateKey(path);
  } catch (error) {
    throw new CdrError('ERR_FW_KEY_INVALID', `${RELEASE_KEY_VARIABLE}=${path}: ${(error as Error).message}; it must name the Ed25519 signing key (private, PEM)`, {
      cause: error,
      details: { path },
    });
  }
}

/** Writes the public half of `signing` and its record into `dir`, as the package ships them. */
export function writeShippedKey(signing: SigningKey, dir: string): string {
  mkdirSync(dir, { recursive: true });
  const publicPath = join(dir, 'release-key.pem');
  const publicKey = createPublicKey(signing.key);
  writeAtomically(publicPath, publicKey.export({ type: 'spki', format: 'pem' }).toString());
  writeAtomically(keyRecordPath(publicPath), `${JSON.stringify({ kind: signing.kind, fingerprint: signing.fingerprint })}\n`);
  return publicPath;
}

/**
 * Loads the public key at `path` with the kind its record states. A record that is missing, unreadable
 * or names another key gives `unrecorded`, because only a record of this exact key shows where it came from.
 *
 * @throws CdrError `ERR_FW_KEY_INVALID` when the key cannot be read
 */
export function loadTrustedKey(path: string): TrustedKey {
  const key = loadPublicKey(path);
  const fingerprint = keyFingerprint(key);
  let kind: TrustedKey['kind'] = 'unrecorded';
  try {
    const record = JSON.parse(readFileSync(keyRecordPath(path), 'utf8')) as { kind?: unknown; fingerprint?: unknown };
    if (record.fingerprint === fingerprint && (record.kind === 'release' || record.kind === 'development')) {
      kind = record.kind;
    }
  } catch {
    // No readable record: the kind stays unrecorded.
  }
  return { key, path, fingerprint, kind };
}

/** Names a key kind for messages: "release key", "development key" or "key without a build record". */
export function describeKeyKind(kind: TrustedKey['kind']): string {
  return kind === 'unrecorded' ? 'key without a build record' : `${kind} key`;
}

function writeAtomically(path: string, content: string): void {
  writeFileSync(`${path}.tmp`, content);
  renameSync(`${path}.tmp`, path);
}
