/**
 * The DNS front: serves DNSBL zones over UDP and TCP (RFC 1035, TCP framing with a two-byte length
 * prefix, RFC 7766). Only QUERY with one question is answered; a name outside every zone is REFUSED.
 */

import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { createServer, type Server, type Socket } from 'node:net';

import dnsPacket, { type Packet } from 'dns-packet';

import { CdrError } from '../../common/errors.js';
import type { Logger } from '../../common/logger.js';
import { RCODE, type DnsZone, type ZoneAnswer } from './zone.js';

/** Largest UDP response without EDNS (RFC 1035 section 2.3.4); larger answers set TC. */
const UDP_PAYLOAD_BYTES = 512;
/** Largest UDP payload honoured from an EDNS OPT record. */
const MAX_EDNS_PAYLOAD_BYTES = 4096;
/** A TCP connection with no complete query for this long is closed, in milliseconds. */
const TCP_IDLE_MS = 10_000;
const MAX_TCP_CONNECTIONS = 256;
/**
 * Tries with port 0. The UDP port the kernel picks may be taken for TCP by another socket, so the pair
 * is picked again with a new UDP socket.
 */
const EPHEMERAL_PORT_ATTEMPTS = 20;

/** Query and answer counts since start. */
export interface DnsCounters {
  queries: number;
  answered: number;
  nxdomain: number;
  refused: number;
  malformed: number;
}

export class DnsServer {
  readonly #log: Logger;
  readonly #zones = new Map<string, DnsZone>();
  #udp: UdpSocket;
  readonly #tcp: Server;
  readonly #connections = new Set<Socket>();
  readonly counters: DnsCounters = { queries: 0, answered: 0, nxdomain: 0, refused: 0, malformed: 0 };
  #port = 0;

  constructor(log: Logger) {
    this.#log = log.child({ component: 'dns' });
    this.#udp = this.#createUdp();
    this.#tcp = createServer((socket) => this.#accept(socket));
  }

  #createUdp(): UdpSocket {
    const udp = createSocket('udp4');
    udp.on('message', (message, remote) => {
      this.#handle(message, UDP_PAYLOAD_BYTES).then(
        (response) => {
          if (response) {
            udp.send(response, remote.port, remote.address);
          }
        },
        (error: unknown) => this.#log.error({ err: error }, 'answering a UDP query failed'),
      );
    });
    return udp;
  }

  /** Replaces the zones served; a query in flight finishes with the zones it started with. */
  setZones(zones: DnsZone[]): void {
    this.#zones.clear();
    for (const zone of zones) {
      this.#zones.set(zone.name, zone);
    }
  }

  get port(): number {
    return this.#port;
  }

  /**
   * Binds UDP, then TCP on the same port. With `port` 0 the UDP port is picked first and TCP takes the
   * same number; when that number is taken for TCP, both are picked again, up to
   * EPHEMERAL_PORT_ATTEMPTS times. NOTE: no test forces the collision; the test nodes all use port 0,
   * so the suite meets it only by chance.
   *
   * @throws CdrError `ERR_DNS_LISTEN` when either socket cannot bind
   */
  async listen(host: string, port: number): Promise<{ host: string; port: number }> {
    for (let attempt = 1; ; attempt += 1) {
      try {
        await this.#bindBoth(host, port);
        break;
      } catch (error) {
        const retry = port === 0 && attempt < EPHEMERAL_PORT_ATTEMPTS && (error as NodeJS.ErrnoException).code === 'EADDRINUSE';
        if (!retry) {
          throw new CdrError('ERR_DNS_LISTEN', `the DNS front cannot listen on ${host}:${port}: ${(error as Error).message}; choose another dns.port or set dns.enabled to false`, {
            cause: error,
            details: { host, port },
          });
        }
        this.#log.debug({ host, port: this.#port, attempt }, 'UDP port taken for TCP; picking another');
        await new Promise<void>((resolveClosed) => this.#udp.close(() => resolveClosed()));
        this.#udp = this.#createUdp();
      }
    }
    this.#udp.on('error', (error) => this.#log.error({ err: error }, 'DNS UDP socket error'));
    this.#tcp.on('error', (error) => this.#log.error({ err: error }, 'DNS TCP listener error'));
    this.#log.info({ host, port: this.#port, zones: [...this.#zones.keys()] }, 'DNS front listening on UDP and TCP');
    return { host, port: this.#port };
  }

  async #bindBoth(host: string, port: number): Promise<void> {
    await new Promise<void>((resolveBind, rejectBind) => {
      this.#udp.once('error', rejectBind);
      this.#udp.bind(port, host, () => {
        this.#udp.off('error', rejectBind);
        resolveBind();
      });
    });
    this.#port = this.#udp.address().port;
    await new Promise<void>((resolveListen, rejectListen) => {
      this.#tcp.once('error', rejectListen);
      this.#tcp.listen(this.#port, host, () => {
        this.#tcp.off('error', rejectListen);
        resolveListen();
      });
    });
  }

  async close(): Promise<void> {
    const tcpClosed = new Promise<void>((resolveClosed) => this.#tcp.close(() => resolveClosed()));
    for (const socket of this.#connections) {
      socket.destroy();
    }
    await new Promise<void>((resolveClosed) => this.#udp.close(() => resolveClosed()));
    await tcpClosed;
  }

  #accept(socket: Socket): void {
    if (this.#connections.size >= MAX_TCP_CONNECTIONS) {
      socket.destroy();
      return;
    }
    this.#connections.add(socket);
    socket.setTimeout(TCP_IDLE_MS, () => socket.destroy());
    socket.on('close', () => this.#connections.delete(socket));
    socket.on('error', () => socket.destroy());

    let buffered = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      while (buffered.length >= 2) {
        const length = buffered.readUInt16BE(0);
        if (buffered.length < 2 + length) {
          break;
        }
        const message = buffered.subarray(2, 2 + length);
        buffered = buffered.subarray(2 + length);
        this.#handle(message, 65_535).then(
          (response) => {
            if (response && !socket.destroyed) {
              const prefix = Buffer.alloc(2);
              prefix.writeUInt16BE(response.length);
              socket.write(Buffer.concat([prefix, response]));
            }
          },
          (error: unknown) => this.#log.error({ err: error }, 'answering a TCP query failed'),
        );
      }
    });
  }

  /** Decodes one query and returns the encoded response, or undefined when nothing can be sent back. */
  async #handle(message: Buffer, maxUdpBytes: number): Promise<Buffer | undefined> {
    this.counters.queries += 1;
    let query: ReturnType<typeof dnsPacket.decode>;
    try {
      query = dnsPacket.decode(message);
    } catch {
      this.counters.malformed += 1;
      if (message.length < 12) {
        return undefined;
      }
      // A header is there: answer FORMERR with the id, as RFC 1035 section 4.1.1 expects.
      return encodeHeaderOnly(message.readUInt16BE(0), RCODE.FORMERR);
    }
    if (query.type !== 'query') {
      return undefined;
    }

    const question = query.questions?.[0];
    const opcode = (query as { opcode?: string }).opcode;
    if (opcode !== 'QUERY' || !question || (query.questions?.length ?? 0) !== 1) {
      this.counters.malformed += 1;
      return this.#encode(query, question ? [question] : [], { rcode: opcode !== 'QUERY' ? RCODE.NOTIMP : RCODE.FORMERR, answers: [], authorities: [] }, maxUdpBytes);
    }

    const answer = await this.#answer(question.name, question.type);
    const edns = query.additionals?.find((record) => record.type === 'OPT') as { udpPayloadSize?: number } | undefined;
    const limit = maxUdpBytes === UDP_PAYLOAD_BYTES && edns?.udpPayloadSize ? Math.min(MAX_EDNS_PAYLOAD_BYTES, Math.max(UDP_PAYLOAD_BYTES, edns.udpPayloadSize)) : maxUdpBytes;
    return this.#encode(query, [question], answer, limit);
  }

  async #answer(qname: string, qtype: string): Promise<ZoneAnswer> {
    const name = qname.toLowerCase().replace(/\.$/, '');
    const labels = name === '' ? [] : name.split('.');
    for (let start = 0; start <= labels.length; start += 1) {
      const zone = this.#zones.get(labels.slice(start).join('.'));
      if (zone) {
        const answer = await zone.answer(labels.slice(0, start), qtype, qname);
        if (answer.rcode === RCODE.NXDOMAIN) {
          this.counters.nxdomain += 1;
        } else {
          this.counters.answered += 1;
        }
        return answer;
      }
    }
    this.counters.refused += 1;
    return { rcode: RCODE.REFUSED, answers: [], authorities: [] };
  }

  #encode(query: Packet & { flag_rd?: boolean }, questions: Packet['questions'], answer: ZoneAnswer, maxBytes: number): Buffer {
    const flags = dnsPacket.AUTHORITATIVE_ANSWER | (query.flag_rd ? dnsPacket.RECURSION_DESIRED : 0) | answer.rcode;
    const response: Packet = { type: 'response', id: query.id ?? 0, flags, questions: questions ?? [], answers: answer.answers, authorities: answer.authorities };
    const encoded = dnsPacket.encode(response);
    if (encoded.length <= maxBytes) {
      return encoded;
    }
    return dnsPacket.encode({ ...response, flags: flags | dnsPacket.TRUNCATED_RESPONSE, answers: [], authorities: [] });
  }
}

function encodeHeaderOnly(id: number, rcode: number): Buffer {
  const header = Buffer.alloc(12);
  header.writeUInt16BE(id, 0);
  header.writeUInt16BE(0x8000 | rcode, 2);
  return header;
}
