/**
 * A DNSBL for tests and benchmarks: a DNS server on 127.0.0.1 (UDP) that answers from a table and
 * counts every query it gets, by name and type.
 */

import { createSocket, type Socket } from 'node:dgram';

import dnsPacket from 'dns-packet';

/** What the upstream answers for one name: A values (with TXT), NXDOMAIN, or silence. */
export type UpstreamRecord = { a: string[]; txt?: string; ttl: number } | { nxdomain: true } | { silent: true };

export interface UpstreamDnsbl {
  port: number;
  /** Queries received, by "TYPE name". */
  counts: Map<string, number>;
  total(): number;
  /** Sets the answer for a name; names not set are NXDOMAIN. */
  records: Map<string, UpstreamRecord>;
  close(): Promise<void>;
}

/** Starts the upstream for `zone`; negative answers carry a SOA whose minimum is `negativeTtl` seconds. */
export async function startUpstreamDnsbl(zone: string, negativeTtl: number): Promise<UpstreamDnsbl> {
  const socket: Socket = createSocket('udp4');
  const counts = new Map<string, number>();
  const records = new Map<string, UpstreamRecord>();

  socket.on('message', (message, remote) => {
    const query = dnsPacket.decode(message);
    const question = query.questions![0]!;
    const key = `${question.type} ${question.name.toLowerCase()}`;
    counts.set(key, (counts.get(key) ?? 0) + 1);

    const record = records.get(question.name.toLowerCase()) ?? { nxdomain: true };
    if ('silent' in record) {
      return;
    }
    const soa = {
      type: 'SOA' as const,
      name: zone,
      ttl: negativeTtl,
      data: { mname: `ns.${zone}`, rname: `hostmaster.${zone}`, serial: 1, refresh: 3600, retry: 600, expire: 86_400, minimum: negativeTtl },
    };
    let response: dnsPacket.Packet;
    if ('nxdomain' in record) {
      response = { type: 'response', id: query.id, flags: dnsPacket.AUTHORITATIVE_ANSWER | 3, questions: [question], authorities: [soa] };
    } else {
      const answers: dnsPacket.Answer[] = [];
      if (question.type === 'A') {
        answers.push(...record.a.map((a) => ({ type: 'A' as const, name: question.name, ttl: record.ttl, data: a })));
      }
      if (question.type === 'TXT' && record.txt) {
        answers.push({ type: 'TXT', name: question.name, ttl: record.ttl, data: record.txt });
      }
      response = { type: 'response', id: query.id, flags: dnsPacket.AUTHORITATIVE_ANSWER, questions: [question], answers, authorities: answers.length ? [] : [soa] };
    }
    socket.send(dnsPacket.encode(response), remote.port, remote.address);
  });

  await new Promise<void>((resolveBind) => socket.bind(0, '127.0.0.1', () => resolveBind()));
  return {
    port: socket.address().port,
    counts,
    records,
    total: () => [...counts.values()].reduce((sum, count) => sum + count, 0),
    close: () => new Promise<void>((resolveClosed) => socket.close(() => resolveClosed())),
  };
}
