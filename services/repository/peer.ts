/**
 * This node's replication identity and the record of its paired peer.
 *
 * Files in the state folder:
 *
 *     tls/replication.pem, tls/replication.key   self-signed certificate (common name = node id) that
 *                                                 the peer pins; generated on first start
 *     peer.json                                   the peer record (see PeerRecord in control.proto);
 *                                                 absent when the node is not paired
 */

import { X509Certificate } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

import { CdrError } from '../common/errors.js';
import { createSelfSignedCertificate } from './tls-material.js';

/** A paired peer, as stored in `peer.json`. */
export interface PeerRecord {
  nodeId: string;
  host: string;
  replicationPort: number;
  certificatePem: string;
  sshHostKeyFingerprint: string;
  pairedMs: number;
  impHost: string;
  impPort: number;
  /** The peer's IMP CA certificate; empty for records stored before it was exchanged. */
  impCaPem: string;
}

export interface ReplicationIdentityFiles {
  certificatePem: string;
  keyPem: string;
  fingerprint: string;
}

/** Loads the replication certificate and key from `tlsDir`, creating them for `nodeId` when missing. */
export async function loadReplicationIdentity(tlsDir: string, nodeId: string): Promise<ReplicationIdentityFiles> {
  const certificatePath = join(tlsDir, 'replication.pem');
  const keyPath = join(tlsDir, 'replication.key');

  if (!existsSync(certificatePath) || !existsSync(keyPath)) {
    mkdirSync(tlsDir, { recursive: true, mode: 0o700 });
    const created = await createSelfSignedCertificate(nodeId, 20 * 365);
    writeAtomically(keyPath, created.keyPem, 0o600);
    writeAtomically(certificatePath, created.certificatePem, 0o644);
  }

  const certificatePem = readFileSync(certificatePath, 'utf8');
  return { certificatePem, keyPem: readFileSync(keyPath, 'utf8'), fingerprint: new X509Certificate(certificatePem).fingerprint256 };
}

/** Reads `peer.json`, or returns undefined when the node is not paired. */
export function loadPeer(stateDir: string): PeerRecord | undefined {
  const path = join(stateDir, 'peer.json');
  if (!existsSync(path)) {
    return undefined;
  }
  try {
    return checkPeer(JSON.parse(readFileSync(path, 'utf8')) as Partial<PeerRecord>);
  } catch (error) {
    throw new CdrError('ERR_PEER_INVALID', `peer record ${path} is unreadable: ${(error as Error).message}; unpair and pair again`, {
      cause: error,
      details: { path },
    });
  }
}

/** Checks a peer record's fields and returns it complete. @throws CdrError `ERR_PEER_INVALID` */
export function checkPeer(peer: Partial<PeerRecord>): PeerRecord {
  const problems: string[] = [];
  if (!peer.nodeId || !/^[a-z0-9][a-z0-9-]{0,62}$/.test(peer.nodeId)) problems.push('nodeId');
  if (!peer.host) problems.push('host');
  if (!Number.isInteger(peer.replicationPort) || peer.replicationPort! < 1 || peer.replicationPort! > 65535) problems.push('replicationPort');
  try {
    // The replication certificate is issued to the node id, so a record whose two disagree is corrupt.
    const commonName = /(?:^|\n)CN=([^\n]*)/.exec(new X509Certificate(peer.certificatePem ?? '').subject)?.[1];
    if (peer.nodeId && commonName !== peer.nodeId) {
      problems.push(`certificatePem (issued to "${commonName ?? ''}", not "${peer.nodeId}")`);
    }
  } catch {
    problems.push('certificatePem');
  }
  if (peer.impCaPem) {
    try {
      new X509Certificate(peer.impCaPem);
    } catch {
      problems.push('impCaPem');
    }
  }
  if (problems.length > 0) {
    throw new CdrError('ERR_PEER_INVALID', `peer record has invalid ${problems.join(', ')}`, { details: { fields: problems } });
  }
  return {
    nodeId: peer.nodeId!,
    host: peer.host!,
    replicationPort: peer.replicationPort!,
    certificatePem: peer.certificatePem!,
    sshHostKeyFingerprint: peer.sshHostKeyFingerprint ?? '',
    pairedMs: peer.pairedMs || Date.now(),
    impHost: peer.impHost ?? '',
    impPort: peer.impPort ?? 0,
    impCaPem: peer.impCaPem ?? '',
  };
}

/** Writes `peer.json` atomically (temporary file, then rename). */
export function savePeer(stateDir: string, peer: PeerRecord): void {
  writeAtomically(join(stateDir, 'peer.json'), `${JSON.stringify(peer, null, 2)}\n`, 0o644);
}

export function removePeer(stateDir: string): void {
  rmSync(join(stateDir, 'peer.json'), { force: true });
}

function writeAtomically(path: string, content: string, mode: number): void {
  mkdirSync(dirname(path), { recursive: true });
  const temporary = `${path}.tmp-${process.pid}`;
  writeFileSync(temporary, content, { mode });
  renameSync(temporary, path);
}
