/**
 * The pairing daemon's local Unix socket, through which cdrctl opens windows and starts joins and
 * unpairs. Its file mode (0660) is the access control, as for the repository's control socket.
 */

import { CdrError } from '../common/errors.js';
import { FramedSocketServer } from '../common/framed-socket-server.js';
import type { Logger } from '../common/logger.js';
import { proto } from '../../modules/protocol/constants.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';
import type { PairingDaemon } from './daemon.js';

/** Largest request accepted on the local socket; requests contain at most a host name and a code. */
const MAX_LOCAL_FRAME_BYTES = 64 * 1024;

export class LocalServer {
  readonly #server: FramedSocketServer<impcdr.v1.PairingRequest, impcdr.v1.IPairingResponse>;
  readonly #daemon: PairingDaemon;

  constructor(daemon: PairingDaemon, log: Logger) {
    this.#daemon = daemon;
    this.#server = new FramedSocketServer(
      {
        maxFrameBytes: MAX_LOCAL_FRAME_BYTES,
        decode: (frame) => proto.PairingRequest.decode(frame),
        encode: (response) => proto.PairingResponse.encode(response).finish(),
        handle: (request) => this.#handle(request),
        fallbackErrorCode: 'ERR_PAIR_PROTOCOL',
        labels: { socket: 'pairing socket', connection: 'pairing socket connection', request: 'pairing request', requestType: 'PairingRequest' },
      },
      log.child({ component: 'pairing-socket' }),
    );
  }

  /** Listens on `path`, replacing a socket file left by a process that died. */
  listen(path: string): Promise<void> {
    return this.#server.listen(path);
  }

  close(): Promise<void> {
    return this.#server.close();
  }

  async #handle(request: impcdr.v1.PairingRequest): Promise<Partial<impcdr.v1.IPairingResponse>> {
    const daemon = this.#daemon;
    switch (request.body) {
      case 'open':
        return { opened: daemon.openWindow(request.open?.seconds ?? 0) };
      case 'close':
        return { status: daemon.closeWindow() };
      case 'status':
        return { status: daemon.status() };
      case 'probe':
        return { probe: { hostKeyFingerprint: await daemon.probe(request.probe?.host ?? '', request.probe?.port ?? 0) } };
      case 'join': {
        const join = request.join!;
        return { pairStatus: await daemon.join(join.host ?? '', join.port ?? 0, join.hostKeyFingerprint ?? '', join.code ?? '') };
      }
      case 'unpair':
        return { pairStatus: await daemon.unpair(request.unpair?.localOnly ?? false) };
      default:
        throw new CdrError('ERR_PROTO_UNKNOWN_MESSAGE_TYPE', 'pairing request has no body this daemon knows');
    }
  }
}
