import test from 'ava';

import { ImpProtocolClient } from '../modules/protocol/client.js';
import { errorCodeFromWire, kindToWire, proto, verdictFromWire, type ObjectKindName } from '../modules/protocol/constants.js';
import { COUNTER_FIELDS, type CounterValues } from '../modules/protocol/counters.js';
import { encodeFrame } from '../modules/protocol/framing.js';
import type { impcdr } from '../modules/protocol/generated/messages.js';
import type { ErrorCode } from '../services/common/errors.js';
import { cdrctl, connectReady, enroll, removeNode, startNode, type ClientBundle, type TestNode } from './helpers/node.js';

let node: TestNode;
let bundle: ClientBundle;
let sequence = 0;

test.before(async () => {
  node = await startNode();
  bundle = await enroll(node, 'imp-observe');
});

test.after.always(async () => {
  await node?.stop();
  if (node) removeNode(node);
});

function observation(kind: ObjectKindName, key: string, counters: Partial<CounterValues>, intervalStartMs = Date.now()): impcdr.v1.IObservation {
  return { object: { kind: kindToWire(kind), key }, intervalStartMs, counters };
}

async function lookupOne(client: ImpProtocolClient, kind: ObjectKindName, key: string): Promise<impcdr.v1.IReputation> {
  const answer = await client.request({ lookup: { keys: [{ kind: kindToWire(kind), key }] } });
  const result = answer.lookupResponse!.results![0]!;
  if (!result.reputation) {
    throw new Error(`lookup failed: ${result.error?.message}`);
  }
  return result.reputation;
}

test.serial('observe then lookup returns the exact counts', async (t) => {
  const client = await connectReady(node, bundle, 'imp-observe');
  const sent = { connections: 7, messages: 12, rcptAccepted: 20, rcptUnknown: 3, spam: 9, ham: 3, spfFail: 4, spfPass: 8, dkimNone: 12, complaints: 1 };

  const ack = await client.request({ observe: { sequence: ++sequence, observations: [observation('ip', '198.51.100.23', sent)] } });
  t.is(ack.observeAck?.applied, 1);
  t.false(ack.observeAck?.duplicate);

  const reputation = await lookupOne(client, 'ip', '198.51.100.23');
  for (const field of COUNTER_FIELDS) {
    t.is(Number(reputation.counters?.[field] ?? 0), (sent as Record<string, number>)[field] ?? 0, field);
  }
  t.is(reputation.object?.key, '198.51.100.23');
  t.true((reputation.score ?? 0) < 0);
  t.true((reputation.reasons ?? []).some((reason) => reason.startsWith('spam ratio')));

  // The /24 aggregate carries the same counts.
  const network = await lookupOne(client, 'network', '198.51.100.0/24');
  t.is(Number(network.counters?.messages), 12);
  await client.close();
});

test.serial('counts from two IMPs add up', async (t) => {
  const other = await enroll(node, 'imp-observe-2');
  const first = await connectReady(node, bundle, 'imp-observe');
  const second = await connectReady(node, other, 'imp-observe-2');

  await first.request({ observe: { sequence: ++sequence, observations: [observation('domain', 'Mail.Example.ORG', { messages: 5, ham: 5 })] } });
  await second.request({ observe: { sequence: 1, observations: [observation('domain', 'mail.example.org.', { messages: 4, spam: 4 })] } });

  const sub = await lookupOne(first, 'domain', 'mail.example.org');
  t.is(Number(sub.counters?.messages), 9);
  t.is(Number(sub.counters?.ham), 5);
  t.is(Number(sub.counters?.spam), 4);
  const registrable = await lookupOne(first, 'domain', 'example.org');
  t.is(Number(registrable.counters?.messages), 9);
  await first.close();
  await second.close();
});

test.serial('re-sent batch is not counted twice', async (t) => {
  const client = await connectReady(node, bundle, 'imp-observe');
  const batch = { sequence: ++sequence, observations: [observation('user', 'Bob@Example.NET', { messages: 2, spam: 2 })] };

  const first = await client.request({ observe: batch });
  t.false(first.observeAck?.duplicate);
  // The acknowledgement is lost: the IMP reconnects and sends the same batch again.
  await client.close();
  const again = await connectReady(node, bundle, 'imp-observe');
  const hello = again.received[0]?.helloAccepted;
  t.is(Number(hello?.lastSequence), sequence);
  const second = await again.request({ observe: batch });
  t.true(second.observeAck?.duplicate);
  t.is(second.observeAck?.applied, 0);

  const reputation = await lookupOne(again, 'user', 'bob@example.net');
  t.is(Number(reputation.counters?.messages), 2);
  await again.close();
});

test.serial('cdrctl lookup --json matches the protocol answer', async (t) => {
  const client = await connectReady(node, bundle, 'imp-observe');
  await client.request({ observe: { sequence: ++sequence, observations: [observation('ip', '2001:DB8::42', { messages: 60, spam: 60, connections: 60 })] } });
  const viaProtocol = await lookupOne(client, 'ip', '2001:db8::42');
  await client.close();

  const result = await cdrctl(node, ['lookup', '--json', 'ip', '2001:db8:0:0::42']);
  t.is(result.code, 0, result.stderr);
  const json = JSON.parse(result.stdout) as Record<string, unknown> & { counters: Record<string, number> };
  t.is(json['kind'], 'ip');
  t.is(json['key'], '2001:db8::42');
  t.is(json['score'], viaProtocol.score);
  t.is(json['verdict'], verdictFromWire(viaProtocol.verdict));
  t.deepEqual(json['reasons'], viaProtocol.reasons);
  t.is(json.counters['messages'], 60);
  t.is(json.counters['spam'], 60);
  t.is(json.counters['ham'], 0);
  t.deepEqual(json['listings'], []);
  t.is(json['verdict'], 'malicious');
});

test.serial('cdrctl status --json counts objects and traffic', async (t) => {
  const result = await cdrctl(node, ['status', '--json']);
  t.is(result.code, 0, result.stderr);
  const status = JSON.parse(result.stdout) as { state: string; objects: Record<string, number>; traffic: Record<string, number>; role: string };
  t.is(status.state, 'open');
  t.is(status.role, 'standalone');
  t.is(status.objects['ip'], 2);
  t.is(status.objects['user'], 1);
  t.is(status.objects['domain'], 2);
  t.true(status.traffic['observations']! >= 4);
  t.true(status.traffic['duplicateBatches']! >= 1);
});

test.serial('subscribe pushes a changed verdict', async (t) => {
  const watcher = await connectReady(node, bundle, 'imp-observe');
  const pushes: impcdr.v1.IReputation[] = [];
  watcher.onPush = (message) => {
    if (message.reputationChanged?.reputation) pushes.push(message.reputationChanged.reputation);
  };
  const subscribed = await watcher.request({ subscribe: { keys: [{ kind: kindToWire('ip'), key: '203.0.113.9' }] } });
  t.is(subscribed.subscribeAck?.subscribed, 1);

  const reporter = await connectReady(node, bundle, 'imp-observe');
  await reporter.request({ observe: { sequence: ++sequence, observations: [observation('ip', '203.0.113.9', { messages: 60, phish: 60 })] } });

  const deadline = Date.now() + 5000;
  while (pushes.length === 0 && Date.now() < deadline) {
    await new Promise((resolveWait) => setTimeout(resolveWait, 20));
  }
  t.is(pushes.length, 1);
  t.is(pushes[0]?.object?.key, '203.0.113.9');
  t.is(verdictFromWire(pushes[0]?.verdict), 'malicious');
  t.is(Number(pushes[0]?.counters?.phish), 60);
  await watcher.close();
  await reporter.close();
});

test.serial('invalid keys fail per key, not per batch', async (t) => {
  const client = await connectReady(node, bundle, 'imp-observe');
  const answer = await client.request({
    lookup: {
      keys: [
        { kind: kindToWire('ip'), key: '198.51.100.23' },
        { kind: kindToWire('ip'), key: '300.1.1.1' },
        { kind: kindToWire('domain'), key: 'co.uk' },
        { kind: 0, key: 'x' },
        { kind: kindToWire('user'), key: 'not-an-address' },
      ],
    },
  });
  const results = answer.lookupResponse!.results!;
  t.is(results.length, 5);
  t.truthy(results[0]!.reputation);
  for (const index of [1, 2, 3, 4]) {
    t.is(errorCodeFromWire(results[index]!.error?.code), 'ERR_KEY_INVALID', `key ${index}`);
    t.is(results[index]!.error?.index, index);
  }

  const observed = await client.request({
    observe: {
      sequence: ++sequence,
      observations: [
        observation('ip', '198.51.100.24', { messages: 1 }),
        observation('ip', 'not-an-ip', { messages: 1 }),
        observation('ip', '198.51.100.25', {}),
        observation('ip', '198.51.100.26', { messages: 1 }, Date.now() + 3_600_000),
        observation('ip', '198.51.100.27', { messages: 1 }, Date.now() - 40 * 86_400_000),
      ],
    },
  });
  t.is(observed.observeAck?.applied, 1);
  const rejected = observed.observeAck?.rejected ?? [];
  t.deepEqual(rejected.map((entry) => entry.index), [1, 2, 3, 4]);
  t.is(errorCodeFromWire(rejected[0]?.code), 'ERR_KEY_INVALID');
  t.is(errorCodeFromWire(rejected[1]?.code), 'ERR_PROTO_INVALID_OBSERVATION');
  t.regex(rejected[2]?.message ?? '', /future/);
  t.regex(rejected[3]?.message ?? '', /retention/);
  await client.close();
});

interface BadRequestCase {
  name: string;
  send: (client: ImpProtocolClient) => Promise<impcdr.v1.ServerMessage>;
  code: ErrorCode;
}

const badRequests: BadRequestCase[] = [
  {
    name: 'lookup of 1001 keys',
    send: (client) => client.request({ lookup: { keys: Array.from({ length: 1001 }, (_, i) => ({ kind: kindToWire('ip'), key: `10.0.${i >> 8}.${i & 255}` })) } }),
    code: 'ERR_PROTO_BATCH_TOO_LARGE',
  },
  { name: 'empty lookup', send: (client) => client.request({ lookup: { keys: [] } }), code: 'ERR_PROTO_EMPTY_BATCH' },
  {
    name: 'observe of 10001 entries',
    send: (client) =>
      client.request({
        observe: { sequence: 999_999, observations: Array.from({ length: 10_001 }, () => observation('ip', '192.0.2.1', { messages: 1 })) },
      }),
    code: 'ERR_PROTO_BATCH_TOO_LARGE',
  },
  {
    name: 'observe with sequence 0',
    send: (client) => client.request({ observe: { sequence: 0, observations: [observation('ip', '192.0.2.1', { messages: 1 })] } }),
    code: 'ERR_PROTO_INVALID_OBSERVATION',
  },
  { name: 'unknown message type', send: (client) => client.request({}), code: 'ERR_PROTO_UNKNOWN_MESSAGE_TYPE' },
  { name: 'second hello', send: (client) => client.hello({ impId: 'imp-observe', clusterId: 'c', model: 'M300', oosVersion: '2.6', moduleVersion: '1' }), code: 'ERR_PROTO_DUPLICATE_HELLO' },
  {
    name: 'request id 0',
    send: async (client) => {
      const answered = new Promise<impcdr.v1.ServerMessage>((resolveAnswer) => {
        client.onPush = (message) => resolveAnswer(message);
      });
      client.writeRaw(encodeFrame(proto.ClientMessage.encode({ requestId: 0, heartbeat: { clientTimeMs: 1 } }).finish()));
      return answered;
    },
    code: 'ERR_PROTO_INVALID_REQUEST_ID',
  },
];

for (const bad of badRequests) {
  test.serial(`bad request answered: ${bad.name}`, async (t) => {
    const client = await connectReady(node, bundle, 'imp-observe');
    const answer = await bad.send(client);
    t.is(errorCodeFromWire(answer.error?.code), bad.code);
    t.false(answer.error?.fatal);

    // The same connection keeps serving.
    const heartbeat = await client.request({ heartbeat: { clientTimeMs: 7 } });
    t.is(heartbeat.heartbeatAck?.clientTimeMs, 7);
    await client.close();
  });
}

interface BadFrameCase {
  name: string;
  bytes: () => Buffer;
  code: ErrorCode;
}

const badFrames: BadFrameCase[] = [
  { name: 'length above the maximum', bytes: () => Buffer.from([0x81, 0x80, 0x80, 0x02]), code: 'ERR_PROTO_FRAME_TOO_LARGE' },
  { name: 'varint longer than five bytes', bytes: () => Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0x01]), code: 'ERR_PROTO_MALFORMED_FRAME' },
  { name: 'payload that is not protobuf', bytes: () => encodeFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])), code: 'ERR_PROTO_MALFORMED_FRAME' },
  { name: 'truncated field inside the payload', bytes: () => encodeFrame(Buffer.from([0x1a, 0x10, 0x08])), code: 'ERR_PROTO_MALFORMED_FRAME' },
];

for (const bad of badFrames) {
  test.serial(`bad frame closes the connection: ${bad.name}`, async (t) => {
    const client = await connectReady(node, bundle, 'imp-observe');
    const bystander = await connectReady(node, bundle, 'imp-observe');

    client.writeRaw(bad.bytes());
    await client.closed();
    const fatal = client.received.find((message) => message.error?.fatal);
    t.is(errorCodeFromWire(fatal?.error?.code), bad.code);

    // Other clients are not affected.
    const heartbeat = await bystander.request({ heartbeat: { clientTimeMs: 9 } });
    t.is(heartbeat.heartbeatAck?.clientTimeMs, 9);
    await bystander.close();
  });
}

test.serial('requests past the in-flight limit are rejected', async (t) => {
  const client = await connectReady(node, bundle, 'imp-observe');
  // 100 heartbeats in one write arrive in one TLS record, so the server dispatches all of them before
  // any completes: exactly the limit of 64 is served and the other 36 are rejected.
  const frames = Array.from({ length: 100 }, (_, i) =>
    encodeFrame(proto.ClientMessage.encode({ requestId: 1000 + i, heartbeat: { clientTimeMs: i } }).finish()),
  );
  const answered = new Promise<void>((resolveAll) => {
    const timer = setInterval(() => {
      if (client.received.filter((message) => Number(message.requestId) >= 1000).length >= 100) {
        clearInterval(timer);
        resolveAll();
      }
    }, 10);
  });
  client.writeRaw(Buffer.concat(frames));
  await answered;

  const answers = client.received.filter((message) => Number(message.requestId) >= 1000);
  const served = answers.filter((answer) => answer.heartbeatAck);
  const busy = answers.filter((answer) => errorCodeFromWire(answer.error?.code) === 'ERR_PROTO_TOO_MANY_IN_FLIGHT');
  t.is(served.length, 64);
  t.is(busy.length, 36);
  t.regex(busy[0]!.error!.message ?? '', /maximum is 64/);
  t.false(busy[0]!.error!.fatal);

  const heartbeat = await client.request({ heartbeat: { clientTimeMs: 5 } });
  t.is(heartbeat.heartbeatAck?.clientTimeMs, 5);
  await client.close();
});

test.serial('busy batch re-sent later is counted once', async (t) => {
  const other = await enroll(node, 'imp-busy');
  const client = await connectReady(node, other, 'imp-busy');

  // Sequence 5 is applied first; sequence 4 arrives later (as after a TOO_MANY_IN_FLIGHT rejection).
  const later = await client.request({ observe: { sequence: 5, observations: [observation('ip', '192.0.2.200', { messages: 5 })] } });
  const earlier = await client.request({ observe: { sequence: 4, observations: [observation('ip', '192.0.2.200', { messages: 4 })] } });
  const repeated = await client.request({ observe: { sequence: 4, observations: [observation('ip', '192.0.2.200', { messages: 4 })] } });

  t.false(later.observeAck?.duplicate);
  t.false(earlier.observeAck?.duplicate);
  t.true(repeated.observeAck?.duplicate);
  t.is(Number((await lookupOne(client, 'ip', '192.0.2.200')).counters?.messages), 9);

  // A sequence more than 1024 below the highest is outside the window and reported as a duplicate.
  await client.request({ observe: { sequence: 2000, observations: [observation('ip', '192.0.2.200', { messages: 1 })] } });
  const tooOld = await client.request({ observe: { sequence: 976, observations: [observation('ip', '192.0.2.200', { messages: 1 })] } });
  const insideWindow = await client.request({ observe: { sequence: 977, observations: [observation('ip', '192.0.2.200', { messages: 1 })] } });
  t.true(tooOld.observeAck?.duplicate);
  t.false(insideWindow.observeAck?.duplicate);
  t.is(Number((await lookupOne(client, 'ip', '192.0.2.200')).counters?.messages), 11);
  await client.close();
});
