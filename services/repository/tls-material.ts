/**
 * The repository's certificate authority, its server certificate, and the signing of client
 * certificates for IMPs. Keys are ECDSA P-256 and certificates are signed with SHA-256.
 *
 * Files in the TLS folder:
 *
 *     ca.pem, ca.key        the CA certificate and its private key (PKCS#8), mode 0600 for the key
 *     server.pem, server.key  the repository's server certificate (signed by the CA) and key
 */

import { webcrypto, randomBytes, X509Certificate } from 'node:crypto';

type CryptoKey = webcrypto.CryptoKey;
type CryptoKeyPair = webcrypto.CryptoKeyPair;
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';

// @peculiar/x509 uses tsyringe, which needs the Reflect metadata API loaded first.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

import { CdrError } from '../common/errors.js';

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0]);

const ALGORITHM = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;

/** PEM texts the TLS listener needs. */
export interface ServerTlsMaterial {
  caPem: string;
  certificatePem: string;
  keyPem: string;
}

/** Checks that a client name is usable as an IMP id and a certificate common name. */
export function checkClientName(name: string): void {
  if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) {
    throw new CdrError(
      'ERR_TLS_ENROLL',
      `invalid client name "${name.length > 70 ? `${name.slice(0, 64)}...` : name}": use 1 to 64 letters, digits, dots, hyphens or underscores, starting with a letter or digit`,
      { details: { name } },
    );
  }
}

/**
 * Loads the CA and server certificate from `dir`, generating the missing ones when `generate` is set.
 *
 * @param serverNames - DNS names and IP addresses the server certificate is valid for
 * @throws CdrError `ERR_TLS_MATERIAL` when files are missing and `generate` is off, or unreadable
 */
export async function loadServerTlsMaterial(
  dir: string,
  options: { generate: boolean; serverValidDays: number; serverNames: string[] },
): Promise<ServerTlsMaterial & { generated: string[] }> {
  const generated: string[] = [];
  const caCertPath = join(dir, 'ca.pem');
  const caKeyPath = join(dir, 'ca.key');
  const serverCertPath = join(dir, 'server.pem');
  const serverKeyPath = join(dir, 'server.key');

  if (!existsSync(caCertPath) || !existsSync(caKeyPath)) {
    if (!options.generate) {
      throw new CdrError('ERR_TLS_MATERIAL', `CA files ${caCertPath} and ${caKeyPath} are missing and tls.generate is false`, {
        details: { dir },
      });
    }
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const ca = await createCa();
    writeAtomically(caKeyPath, ca.keyPem, 0o600);
    writeAtomically(caCertPath, ca.certificatePem, 0o644);
    generated.push('ca');
  }

  const caPem = readFileSync(caCertPath, 'utf8');
  if (!existsSync(serverCertPath) || !existsSync(serverKeyPath)) {
    if (!options.generate) {
      throw new CdrError('ERR_TLS_MATERIAL', `server files ${serverCertPath} and ${serverKeyPath} are missing and tls.generate is false`, {
        details: { dir },
      });
    }
    const caKey = await importPrivateKey(readFileSync(caKeyPath, 'utf8'));
    const server = await createServerCertificate(caPem, caKey, options.serverNames, options.serverValidDays);
    writeAtomically(serverKeyPath, server.keyPem, 0o600);
    writeAtomically(serverCertPath, server.certificatePem, 0o644);
    generated.push('server');
  }

  return {
    caPem,
    certificatePem: readFileSync(serverCertPath, 'utf8'),
    keyPem: readFileSync(serverKeyPath, 'utf8'),
    generated,
  };
}

/**
 * Signs a client certificate for `name` from a PKCS#10 request, with the CA in `dir`.
 *
 * @throws CdrError `ERR_TLS_ENROLL` for a bad name, an unparsable or badly signed request, or a request
 *   whose common name differs from `name`
 */
export async function signClientCertificate(
  dir: string,
  name: string,
  csrPem: string,
  validDays: number,
): Promise<{ certificatePem: string; caPem: string; fingerprint: string; notAfterMs: number }> {
  checkClientName(name);

  let request: x509.Pkcs10CertificateRequest;
  try {
    request = new x509.Pkcs10CertificateRequest(csrPem);
  } catch (error) {
    throw new CdrError('ERR_TLS_ENROLL', 'certificate request is not a PEM PKCS#10 request', { cause: error });
  }
  if (!(await request.verify())) {
    throw new CdrError('ERR_TLS_ENROLL', 'certificate request signature does not verify');
  }
  const requestedName = request.subjectName.getField('CN')[0];
  if (requestedName !== name) {
    throw new CdrError('ERR_TLS_ENROLL', `certificate request names "${requestedName ?? ''}", expected "${name}"`, {
      details: { name, requestedName },
    });
  }

  const caPem = readFileSync(join(dir, 'ca.pem'), 'utf8');
  const caKey = await importPrivateKey(readFileSync(join(dir, 'ca.key'), 'utf8'));
  const caCertificate = new x509.X509Certificate(caPem);
  const notBefore = new Date(Date.now() - 5 * 60_000);
  const notAfter = new Date(Date.now() + validDays * DAY_MS);

  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${name}`,
    issuer: caCertificate.subject,
    notBefore,
    notAfter,
    signingAlgorithm: ALGORITHM,
    publicKey: request.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.clientAuth], false),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false),
    ],
  });

  const certificatePem = certificate.toString('pem');
  return {
    certificatePem,
    caPem,
    fingerprint: new X509Certificate(certificatePem).fingerprint256,
    notAfterMs: notAfter.getTime(),
  };
}

/** Creates a key pair and a PKCS#10 request for `name`, as `cdrctl client enroll` does on the client side. */
export async function createCertificateRequest(name: string): Promise<{ csrPem: string; keyPem: string }> {
  checkClientName(name);
  const keys = await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify']);
  const request = await x509.Pkcs10CertificateRequestGenerator.create({
    name: `CN=${name}`,
    keys: keys as CryptoKeyPair,
    signingAlgorithm: ALGORITHM,
  });
  return { csrPem: request.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey as CryptoKey) };
}

/** Names the server certificate covers by default: loopback, this host, and the listener's address. */
export function defaultServerNames(listenHost: string): string[] {
  const names = new Set(['localhost', '127.0.0.1', '::1', hostname()]);
  if (listenHost !== '0.0.0.0' && listenHost !== '::') {
    names.add(listenHost);
  }
  return [...names];
}

/**
 * Creates a self-signed ECDSA P-256 certificate for `commonName`, usable as both TLS server and client.
 * A peer pins it as the only certificate it accepts, so it needs no CA.
 */
export async function createSelfSignedCertificate(commonName: string, validDays: number): Promise<{ certificatePem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=${commonName}`,
    notBefore: new Date(Date.now() - 5 * 60_000),
    notAfter: new Date(Date.now() + validDays * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth], false),
      new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: commonName }], false),
    ],
  });
  return { certificatePem: certificate.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
}

async function createCa(): Promise<{ certificatePem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=IMP-CDR CA ${hostname()}`,
    notBefore: new Date(Date.now() - 5 * 60_000),
    notAfter: new Date(Date.now() + 20 * 365 * DAY_MS),
    signingAlgorithm: ALGORITHM,
    keys,
    extensions: [
      new x509.BasicConstraintsExtension(true, 0, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return { certificatePem: certificate.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
}

async function createServerCertificate(
  caPem: string,
  caKey: CryptoKey,
  names: string[],
  validDays: number,
): Promise<{ certificatePem: string; keyPem: string }> {
  const keys = (await webcrypto.subtle.generateKey(ALGORITHM, true, ['sign', 'verify'])) as CryptoKeyPair;
  const caCertificate = new x509.X509Certificate(caPem);
  const alternativeNames = names.map((name) =>
    /^[0-9.]+$/.test(name) || name.includes(':') ? { type: 'ip' as const, value: name } : { type: 'dns' as const, value: name },
  );

  const certificate = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=${hostname()}`,
    issuer: caCertificate.subject,
    notBefore: new Date(Date.now() - 5 * 60_000),
    notAfter: new Date(Date.now() + validDays * DAY_MS),
    signingAlgorithm: ALGORITHM,
    publicKey: keys.publicKey,
    signingKey: caKey,
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
      new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth], false),
      new x509.SubjectAlternativeNameExtension(alternativeNames, false),
      await x509.AuthorityKeyIdentifierExtension.create(caCertificate, false),
    ],
  });
  return { certificatePem: certificate.toString('pem'), keyPem: await exportPrivateKey(keys.privateKey) };
}

async function exportPrivateKey(key: CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

async function importPrivateKey(pem: string): Promise<CryptoKey> {
  const base64 = pem.replace(/-----(BEGIN|END) PRIVATE KEY-----/g, '').replace(/\s+/g, '');
  try {
    return (await webcrypto.subtle.importKey('pkcs8', Buffer.from(base64, 'base64'), ALGORITHM, false, ['sign'])) as CryptoKey;
  } catch (error) {
    throw new CdrError('ERR_TLS_MATERIAL', 'CA private key is not a PKCS#8 ECDSA P-256 key', { cause: error });
  }
}

function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0]! &= 0x7f;
  return bytes.toString('hex');
}

function writeAtomically(path: string, content: string, mode: number): void {
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, content, { mode });
  chmodSync(temporary, mode);
  renameSync(temporary, path);
}
