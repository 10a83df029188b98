/**
 * The control socket: a Unix socket through which cdrctl and the other local daemons reach the index.
 * Its file mode (0660) is the access control.
 */

import { CdrError } from '../common/errors.js';
import { FramedSocketServer } from '../common/framed-socket-server.js';
import type { Logger } from '../common/logger.js';
import { proto } from '../../modules/protocol/constants.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import type { ReputationIndex } from './reputation-index.js';
import { signClientCertificate } from './tls-material.js';
import { entryError, kindOfWireKey, reputationToWire } from './wire.js';
import type { FeedManager, FeedView } from './feeds/feed-manager.js';
import { definitionFromWire, feedToWire } from './feeds/feed-wire.js';
import { writeExport } from './feeds/export.js';
import type { CdrConfig } from '../common/config-schema.js';

/** Maximum size of one control frame; a policy document or a lookup batch fits easily. */
export const MAX_CONTROL_FRAME_BYTES = 4 * 1024 * 1024;

export interface ControlContext {
  index: ReputationIndex;
  tlsDir: string;
  clientValidDays: number;
  maxLookupKeys: number;
  status: () => Promise<impcdr.v1.IStatus>;
  identity: () => impcdr.v1.IReplicationIdentity;
  pairStatus: () => impcdr.v1.IPairStatus;
  /** Stores the peer and starts replication with it. @throws CdrError `ERR_PEER_INVALID` */
  setPeer: (peer: impcdr.v1.IPeerRecord) => Promise<void>;
  clearPeer: () => Promise<void>;
  /** The paired node's IMP CA certificate, '' when unpaired. */
  peerCaPem: () => string;
  feeds: FeedManager;
  feedDefaults: CdrConfig['feeds'];
  dnsblStatus: () => impcdr.v1.IDnsblStatus;
  /** The newest `limit` audit entries, oldest first. */
  auditEntries: (limit: number) => Promise<{ atMs: number; entry: unknown }[]>;
}

/** Audit entries returned when the request gives no limit. */
const DEFAULT_AUDIT_ENTRIES = 100;
/** Maximum audit entries one response carries. */
const MAX_AUDIT_ENTRIES = 1000;
/**
 * Maximum characters of JSON sent for a kept or discarded value. At MAX_AUDIT_ENTRIES entries of two
 * values each, a response stays near 2 MiB, under MAX_CONTROL_FRAME_BYTES.
 */
const MAX_AUDIT_VALUE_CHARS = 1024;

export class ControlServer {
  readonly #server: FramedSocketServer<impcdr.v1.ControlRequest, impcdr.v1.IControlResponse>;
  readonly #context: ControlContext;
  readonly #log: Logger;

  constructor(context: ControlContext, log: Logger) {
    this.#context = context;
    this.#log = log.child({ component: 'control' });
    this.#server = new FramedSocketServer(
      {
        maxFrameBytes: MAX_CONTROL_FRAME_BYTES,
        decode: (frame) => proto.ControlRequest.decode(frame),
        encode: (response) => proto.ControlResponse.encode(response).finish(),
        handle: (request) => this.#handle(request),
        fallbackErrorCode: 'ERR_CONTROL_REQUEST',
        labels: { socket: 'control socket', connection: 'control connection', request: 'control request', requestType: 'ControlRequest' },
      },
      this.#log,
    );
  }

  get listening(): boolean {
    return this.#server.listening;
  }

  /**
   * Listens on `path`. A socket file left by a process that died is removed first; the index lock,
   * taken before this, guarantees no live repository owns it.
   */
  async listen(path: string): Promise<void> {
    await this.#server.listen(path);
    this.#log.info({ path }, 'control socket ready');
  }

  close(): Promise<void> {
    return this.#server.close();
  }

  async #handle(request: impcdr.v1.ControlRequest): Promise<Partial<impcdr.v1.IControlResponse>> {
    const index = this.#context.index;

    switch (request.body) {
      case 'status':
        return { status: await this.#context.status() };

      case 'lookup': {
        const keys = request.lookup?.keys ?? [];
        if (keys.length > this.#context.maxLookupKeys) {
          throw new CdrError('ERR_PROTO_BATCH_TOO_LARGE', `${keys.length} keys, the maximum is ${this.#context.maxLookupKeys}`);
        }
        const results = await Promise.all(
          keys.map(async (object, position): Promise<impcdr.v1.ILookupResult> => {
            try {
              return { reputation: reputationToWire(await index.lookup(kindOfWireKey(object), object.key ?? '')) };
            } catch (error) {
              return { error: entryError(position, error) };
            }
          }),
        );
        return { lookup: { results } };
      }

      case 'enroll': {
        const enroll = request.enroll!;
        const signed = await signClientCertificate(
          this.#context.tlsDir,
          enroll.name ?? '',
          enroll.csrPem ?? '',
          enroll.validDays || this.#context.clientValidDays,
        );
        this.#log.info({ name: enroll.name, fingerprint: signed.fingerprint }, 'client certificate issued');
        return {
          enroll: {
            certificatePem: signed.certificatePem,
            // The paired node's CA too, so the IMP can verify either node's server certificate.
            caCertificatePem: [signed.caPem, this.#context.peerCaPem()].filter((pem) => pem !== '').map((pem) => pem.trimEnd()).join('\n') + '\n',
            fingerprintSha256: signed.fingerprint,
            notAfterMs: signed.notAfterMs,
          },
        };
      }

      case 'policyShow':
        return { policy: index.policy };

      case 'policySet': {
        const stored = await index.setPolicy(request.policySet?.yaml ?? '', request.policySet?.sourceName || 'policy');
        return { policy: stored };
      }

      case 'identity':
        return { identity: this.#context.identity() };

      case 'pairStatus':
        return { pairStatus: this.#context.pairStatus() };

      case 'peerSet':
        await this.#context.setPeer(request.peerSet?.peer ?? {});
        return { pairStatus: this.#context.pairStatus() };

      case 'peerClear':
        await this.#context.clearPeer();
        return { pairStatus: this.#context.pairStatus() };

      case 'feedList':
        return { feeds: this.#feedList(this.#context.feeds.list()) };

      case 'feedAdd': {
        const added = await this.#context.feeds.add(definitionFromWire(request.feedAdd?.feed, this.#context.feedDefaults));
        return { feeds: this.#feedList([added]) };
      }

      case 'feedRemove':
        await this.#context.feeds.remove(request.feedRemove?.id ?? '');
        return { feeds: this.#feedList(this.#context.feeds.list()) };

      case 'feedRefresh': {
        const id = request.feedRefresh?.id ?? '';
        const refreshed = id === '' ? await this.#context.feeds.refreshAll() : [await this.#context.feeds.refresh(id)];
        return { feeds: this.#feedList(refreshed) };
      }

      case 'feedStatus':
        return { feeds: this.#feedList([this.#context.feeds.get(request.feedStatus?.id ?? '')]) };

      case 'export': {
        const path = request.export?.path ?? '';
        const written = await writeExport(this.#context.feeds.datasets(), request.export?.format ?? '', path);
        this.#log.info({ path, format: request.export?.format, entries: written.entries }, 'export written');
        return { export: { path, entries: written.entries, bytes: written.bytes } };
      }

      case 'dnsblStatus':
        return { dnsblStatus: this.#context.dnsblStatus() };

      case 'audit': {
        const limit = Math.min(request.audit?.limit || DEFAULT_AUDIT_ENTRIES, MAX_AUDIT_ENTRIES);
        const entries = await this.#context.auditEntries(limit);
        return { audit: { entries: entries.map(({ atMs, entry }) => auditToWire(atMs, entry)) } };
      }

      default:
        throw new CdrError('ERR_PROTO_UNKNOWN_MESSAGE_TYPE', 'control request has no body this repository knows');
    }
  }

  #feedList(feeds: FeedView[]): impcdr.v1.IFeedList {
    return { feeds: feeds.map(feedToWire), nodeId: this.#context.feeds.nodeId };
  }
}

/** Converts a stored audit entry; values longer than MAX_AUDIT_VALUE_CHARS are cut and marked. */
function auditToWire(atMs: number, entry: unknown): impcdr.v1.IAuditEntry {
  const { kind, key, peer, kept, discarded } = entry as { kind?: string; key?: string; peer?: string; kept?: unknown; discarded?: unknown };
  const json = (value: unknown) => {
    const text = JSON.stringify(value) ?? 'null';
    return text.length > MAX_AUDIT_VALUE_CHARS ? `${text.slice(0, MAX_AUDIT_VALUE_CHARS)}...(${text.length} characters)` : text;
  };
  return { atMs, kind: kind ?? '', key: (key ?? '').replaceAll('\u0000', '/'), peer: peer ?? '', keptJson: json(kept), discardedJson: json(discarded) };
}
