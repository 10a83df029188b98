/**
 * The pairing daemon's SSH host key and OpenSSH-style fingerprints.
 *
 * The host key is an ed25519 key in OpenSSH format, created on first start with mode 0600. The same key
 * authenticates this node as an SSH client when it joins or unpairs a peer, so the peer can pin it.
 */

import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';

import ssh2 from 'ssh2';
import type { ParsedKey } from 'ssh2';

import { CdrError } from '../common/errors.js';

/** An OpenSSH SHA-256 fingerprint: "SHA256:" and 43 characters of unpadded base64. */
export const FINGERPRINT_PATTERN = /^SHA256:[A-Za-z0-9+/]{43}$/;

export interface HostKey {
  /** The private key as ssh2 uses it. */
  parsed: ParsedKey;
  /** The private key file's content, for ssh2's `hostKeys`. */
  privateKey: string;
  /** "SHA256:..." of the public key, as `ssh-keygen -l` prints it. */
  fingerprint: string;
}

/**
 * Returns the fingerprint of an SSH public key blob (the wire encoding, RFC 4253 section 6.6) in the
 * form `ssh-keygen -l` prints: "SHA256:" and the unpadded base64 of its SHA-256 digest.
 */
export function fingerprintOf(publicKeyBlob: Buffer): string {
  return `SHA256:${createHash('sha256').update(publicKeyBlob).digest('base64').replace(/=+$/, '')}`;
}

/**
 * Loads the host key at `path`, creating an ed25519 key there when the file is missing.
 *
 * @throws CdrError `ERR_PAIR_HOST_KEY` when the file cannot be read or is not an unencrypted private key
 */
export function loadOrCreateHostKey(path: string): HostKey & { created: boolean } {
  let created = false;
  if (!existsSync(path)) {
    mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
    const pair = ssh2.utils.generateKeyPairSync('ed25519', { comment: 'imp-cdr-pairing' });
    const temporary = `${path}.tmp-${process.pid}`;
    writeFileSync(temporary, pair.private, { mode: 0o600, flag: 'wx' });
    renameSync(temporary, path);
    created = true;
  }

  let privateKey: string;
  try {
    privateKey = readFileSync(path, 'utf8');
  } catch (error) {
    throw new CdrError('ERR_PAIR_HOST_KEY', `cannot read the pairing host key ${path}: ${(error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }

  const parsed = ssh2.utils.parseKey(privateKey);
  if (parsed instanceof Error || Array.isArray(parsed) || !parsed.isPrivateKey()) {
    const reason = parsed instanceof Error ? parsed.message : 'not a single unencrypted private key';
    throw new CdrError(
      'ERR_PAIR_HOST_KEY',
      `pairing host key ${path} is invalid (${reason}); move it away and restart to create a new one, then pair again`,
      { details: { path } },
    );
  }

  return { parsed, privateKey, fingerprint: fingerprintOf(parsed.getPublicSSH()), created };
}

/**
 * Checks the form of a fingerprint typed by a technician.
 *
 * @throws CdrError `ERR_PAIR_FINGERPRINT_INVALID` unless it is "SHA256:" and 43 base64 characters
 */
export function checkFingerprint(value: string): string {
  const trimmed = value.trim();
  if (!FINGERPRINT_PATTERN.test(trimmed)) {
    throw new CdrError(
      'ERR_PAIR_FINGERPRINT_INVALID',
      `expected a fingerprint like "SHA256:" followed by 43 base64 characters, as "cdrctl pair open" prints it, got "${trimmed}"`,
      { details: { value: trimmed } },
    );
  }
  return trimmed;
}
