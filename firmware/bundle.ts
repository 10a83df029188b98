/**
 * Firmware bundles: a POSIX tar archive with exactly these entries, in this order:
 *
 *     manifest.json        the manifest (see manifest.ts)
 *     manifest.sig         the Ed25519 signature over the exact bytes of manifest.json, 64 bytes
 *     payload/NAME         each payload the manifest lists (the Debian package)
 *
 * Reading checks everything before anything changes on the node: the archive is complete, the
 * signature verifies against the trusted public key, the manifest is valid, and every payload has
 * the size and SHA-256 the manifest states.
 */

import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, KeyObject, sign, verify } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';

import { create, Parser, type ReadEntry } from 'tar';

import { CdrError } from '../services/common/errors.js';
import { MANIFEST_FORMAT, parseManifest, type FirmwareManifest } from './manifest.js';
import type { TrustedKey } from './release-key.js';

export const MANIFEST_ENTRY = 'manifest.json';
export const SIGNATURE_ENTRY = 'manifest.sig';
export const PAYLOAD_PREFIX = 'payload/';

/** Largest bundle read, in bytes: the package is about 6 MB compressed, so 1 GiB leaves ample room. */
export const MAX_BUNDLE_BYTES = 1024 ** 3;
/** Largest manifest read, in bytes. */
export const MAX_MANIFEST_BYTES = 64 * 1024;
const ED25519_SIGNATURE_BYTES = 64;
/** A tar archive ends with two 512-byte blocks of zeros; a bundle without them was cut short. */
const TAR_END_BYTES = 1024;

/** A bundle read and checked in memory. */
export interface VerifiedBundle {
  manifest: FirmwareManifest;
  manifestBytes: Buffer;
  /** Payload contents by name. */
  payloads: Map<string, Buffer>;
  /** SHA-256 of the manifest bytes, the bundle's identity in status and history. */
  manifestSha256: string;
}

/**
 * Reads and verifies the bundle at `path` against `publicKey`. A `TrustedKey` also names the key's kind
 * (release or development) in the message of a signature that does not verify.
 *
 * @throws CdrError `ERR_FW_BUNDLE_INVALID`, `ERR_FW_BUNDLE_TRUNCATED`, `ERR_FW_BUNDLE_TOO_LARGE`,
 *   `ERR_FW_SIGNATURE_INVALID`, `ERR_FW_MANIFEST_INVALID`, `ERR_FW_PAYLOAD_MISSING` or `ERR_FW_PAYLOAD_HASH`
 */
export async function readVerifiedBundle(path: string, trusted: KeyObject | TrustedKey): Promise<VerifiedBundle> {
  const publicKey = trusted instanceof KeyObject ? trusted : trusted.key;
  const entries = await readBundleEntries(path);

  const manifestBytes = entries.get(MANIFEST_ENTRY);
  const signature = entries.get(SIGNATURE_ENTRY);
  if (!manifestBytes || !signature) {
    throw new CdrError('ERR_FW_BUNDLE_INVALID', `${path} has no ${manifestBytes ? SIGNATURE_ENTRY : MANIFEST_ENTRY}; a bundle contains ${MANIFEST_ENTRY}, ${SIGNATURE_ENTRY} and payload/`, {
      details: { path },
    });
  }
  if (signature.length !== ED25519_SIGNATURE_BYTES || !verify(null, manifestBytes, publicKey, signature)) {
    const fingerprint = keyFingerprint(publicKey);
    const kind = trusted instanceof KeyObject || trusted.kind === 'unrecorded' ? '' : `, ${trusted.kind} key`;
    throw new CdrError(
      'ERR_FW_SIGNATURE_INVALID',
      `the manifest signature of ${path} does not verify with the trusted public key (SHA-256 ${fingerprint}${kind}); the bundle was changed or signed with another key`,
      { details: { path, keyFingerprint: fingerprint } },
    );
  }

  const manifest = parseManifest(manifestBytes);
  const payloads = new Map<string, Buffer>();
  for (const payload of manifest.payloads) {
    const contents = entries.get(PAYLOAD_PREFIX + payload.name);
    if (!contents) {
      throw new CdrError('ERR_FW_PAYLOAD_MISSING', `${path} lacks payload/${payload.name}, which the manifest lists`, { details: { path, payload: payload.name } });
    }
    const sha256 = createHash('sha256').update(contents).digest('hex');
    if (contents.length !== payload.bytes || sha256 !== payload.sha256) {
      throw new CdrError(
        'ERR_FW_PAYLOAD_HASH',
        `payload ${payload.name} has ${contents.length} bytes and SHA-256 ${sha256}, but the manifest states ${payload.bytes} bytes and ${payload.sha256}; the bundle is damaged`,
        { details: { path, payload: payload.name, expected: payload.sha256, actual: sha256 } },
      );
    }
    payloads.set(payload.name, contents);
  }
  for (const name of entries.keys()) {
    if (name.startsWith(PAYLOAD_PREFIX) && !payloads.has(name.slice(PAYLOAD_PREFIX.length))) {
      throw new CdrError('ERR_FW_BUNDLE_INVALID', `${path} contains ${name}, which the manifest does not list`, { details: { path, entry: name } });
    }
  }

  return { manifest, manifestBytes, payloads, manifestSha256: createHash('sha256').update(manifestBytes).digest('hex') };
}

/** Reads every entry of the tar archive at `path` into memory, checking its size and completeness. */
async function readBundleEntries(path: string): Promise<Map<string, Buffer>> {
  let bytes: number;
  try {
    bytes = statSync(path).size;
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === 'ENOENT' ? 'file not found' : (error as Error).message;
    throw new CdrError('ERR_FW_BUNDLE_INVALID', `cannot read bundle ${path}: ${reason}`, { cause: error, details: { path } });
  }
  if (bytes > MAX_BUNDLE_BYTES) {
    throw new CdrError('ERR_FW_BUNDLE_TOO_LARGE', `bundle ${path} has ${bytes} bytes; the maximum is ${MAX_BUNDLE_BYTES}`, { details: { path, bytes } });
  }
  const archive = readFileSync(path);
  // A tar archive starts with a header block that carries the ustar magic. A file without one was never
  // a bundle, whereas a bundle cut short keeps its first header.
  if (archive.length < 512 || archive.toString('latin1', 257, 262) !== 'ustar') {
    throw new CdrError('ERR_FW_BUNDLE_INVALID', `${path} (${archive.length} bytes) is not a tar archive, so not a firmware bundle; check the file name`, {
      details: { path, bytes: archive.length },
    });
  }
  if (archive.length < TAR_END_BYTES || archive.length % 512 !== 0 || !archive.subarray(archive.length - TAR_END_BYTES).every((byte) => byte === 0)) {
    throw new CdrError('ERR_FW_BUNDLE_TRUNCATED', `bundle ${path} (${archive.length} bytes) does not end with the tar end-of-archive blocks; it was cut short, so copy it again`, {
      details: { path, bytes: archive.length },
    });
  }

  const entries = new Map<string, Buffer>();
  const expectedOrder = [MANIFEST_ENTRY, SIGNATURE_ENTRY];
  await new Promise<void>((resolveRead, rejectRead) => {
    const parser = new Parser({ strict: true });
    const fail = (error: CdrError) => {
      parser.abort(error);
      rejectRead(error);
    };
    parser.on('entry', (entry: ReadEntry) => {
      const index = entries.size;
      const name = entry.path;
      if (entry.type !== 'File' || (index < 2 ? name !== expectedOrder[index] : !name.startsWith(PAYLOAD_PREFIX)) || entries.has(name) || name.slice(PAYLOAD_PREFIX.length).includes('/')) {
        fail(new CdrError('ERR_FW_BUNDLE_INVALID', `unexpected entry "${name}" (${entry.type}) at position ${index + 1} of ${path}; expected ${expectedOrder[index] ?? 'payload/NAME'}`, { details: { path, entry: name } }));
        return;
      }
      if (name === MANIFEST_ENTRY && entry.size > MAX_MANIFEST_BYTES) {
        fail(new CdrError('ERR_FW_MANIFEST_INVALID', `manifest.json has ${entry.size} bytes; the maximum is ${MAX_MANIFEST_BYTES}`, { details: { path } }));
        return;
      }
      const chunks: Buffer[] = [];
      entry.on('data', (chunk: Buffer) => chunks.push(chunk));
      entry.on('end', () => entries.set(name, Buffer.concat(chunks)));
    });
    parser.on('error', (error: Error & { code?: string }) => {
      const code = error.message.includes('Truncated') ? 'ERR_FW_BUNDLE_TRUNCATED' : 'ERR_FW_BUNDLE_INVALID';
      rejectRead(new CdrError(code, `bundle ${path} is not a readable tar archive: ${error.message}`, { cause: error, details: { path } }));
    });
    parser.on('end', () => resolveRead());
    parser.end(archive);
  });
  return entries;
}

/** Options of `buildBundle`. */
export interface BuildOptions {
  /** The Debian package to ship. */
  debPath: string;
  /** Ed25519 private key (PEM) to sign with. */
  privateKey: KeyObject;
  version: string;
  models: string[];
  minOosVersion: string;
  /** Bundle file to write. */
  outPath: string;
  /** Build time written into the manifest. @defaultValue now */
  created?: Date;
}

/** Writes a signed bundle and returns its manifest. @throws CdrError `ERR_FW_MANIFEST_INVALID` */
export async function buildBundle(options: BuildOptions): Promise<FirmwareManifest> {
  const deb = readFileSync(options.debPath);
  const manifest: FirmwareManifest = {
    format: MANIFEST_FORMAT,
    product: 'imp-cdr',
    version: options.version,
    models: options.models,
    minOosVersion: options.minOosVersion,
    created: (options.created ?? new Date()).toISOString(),
    payloads: [{ name: basename(options.debPath), type: 'deb', bytes: deb.length, sha256: createHash('sha256').update(deb).digest('hex') }],
  };
  const manifestBytes = Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`, 'utf8');
  parseManifest(manifestBytes);

  const staging = mkdtempSync(join(dirname(options.outPath), '.bundle-'));
  try {
    writeFileSync(join(staging, MANIFEST_ENTRY), manifestBytes);
    writeFileSync(join(staging, SIGNATURE_ENTRY), sign(null, manifestBytes, options.privateKey));
    mkdirSync(join(staging, 'payload'));
    writeFileSync(join(staging, PAYLOAD_PREFIX + basename(options.debPath)), deb);
    const temporary = `${options.outPath}.tmp`;
    await create({ file: temporary, cwd: staging, portable: true, noDirRecurse: true }, [MANIFEST_ENTRY, SIGNATURE_ENTRY, PAYLOAD_PREFIX + basename(options.debPath)]);
    renameSync(temporary, options.outPath);
  } finally {
    rmSync(staging, { recursive: true, force: true });
  }
  return manifest;
}

/** Reads an Ed25519 public key from PEM. @throws CdrError `ERR_FW_KEY_INVALID` */
export function loadPublicKey(path: string): KeyObject {
  return loadKey(path, 'public', (pem) => createPublicKey(pem));
}

/** Reads an Ed25519 private key from PEM. @throws CdrError `ERR_FW_KEY_INVALID` */
export function loadPrivateKey(path: string): KeyObject {
  return loadKey(path, 'private', (pem) => createPrivateKey(pem));
}

function loadKey(path: string, kind: 'public' | 'private', parse: (pem: string) => KeyObject): KeyObject {
  let pem: string;
  let key: KeyObject;
  try {
    pem = readFileSync(path, 'utf8');
    key = parse(pem);
  } catch (error) {
    throw new CdrError('ERR_FW_KEY_INVALID', `cannot read the Ed25519 ${kind} key ${path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`, {
      cause: error,
      details: { path },
    });
  }
  // createPublicKey also accepts a private key and derives its public half, which would hide a signing
  // key copied onto an appliance.
  if (kind === 'public' && /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)) {
    throw new CdrError('ERR_FW_KEY_INVALID', `${path} is a private key; give the public key (release-key.pem), and keep the signing key off the appliances`, {
      details: { path },
    });
  }
  if (key.asymmetricKeyType !== 'ed25519') {
    throw new CdrError('ERR_FW_KEY_INVALID', `${path} is a ${key.asymmetricKeyType} key; firmware signing uses Ed25519`, { details: { path } });
  }
  return key;
}

/** Writes a new Ed25519 key pair as `DIR/signing-key.pem` (mode 0600) and `DIR/release-key.pem`. */
export function generateSigningKeys(dir: string): { privatePath: string; publicPath: string; fingerprint: string } {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  mkdirSync(dir, { recursive: true });
  const privatePath = join(dir, 'signing-key.pem');
  const publicPath = join(dir, 'release-key.pem');
  writeFileSync(privatePath, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600, flag: 'wx' });
  writeFileSync(publicPath, publicKey.export({ type: 'spki', format: 'pem' }), { flag: 'wx' });
  return { privatePath, publicPath, fingerprint: keyFingerprint(publicKey) };
}

/** SHA-256 of the DER public key, hex: how messages and logs name a key. */
export function keyFingerprint(key: KeyObject): string {
  const publicKey = key.type === 'private' ? createPublicKey(key) : key;
  return createHash('sha256').update(publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
}
