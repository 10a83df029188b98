import test from 'ava';
import protobuf from 'protobufjs/minimal.js';

import { encodeFrame, FrameDecoder } from '../modules/protocol/framing.js';
import { CdrError } from '../services/common/errors.js';

/** Builds a payload whose bytes repeat only every 256 positions, so a copy shifted by fewer bytes compares unequal. */
function payloadOf(length: number): Buffer {
  const payload = Buffer.alloc(length);
  for (let i = 0; i < length; i++) {
    payload[i] = (i * 31 + 7) & 0xff;
  }
  return payload;
}

/** Returns the length of the varint in front of a frame: every byte up to the first without the continuation bit. */
function headerLength(frame: Buffer): number {
  let index = 0;
  while ((frame[index]! & 0x80) !== 0) {
    index += 1;
  }
  return index + 1;
}

const headers = [
  { length: 0, bytes: [0x00] },
  { length: 127, bytes: [0x7f] },
  { length: 128, bytes: [0x80, 0x01] },
  { length: 16383, bytes: [0xff, 0x7f] },
  { length: 16384, bytes: [0x80, 0x80, 0x01] },
  { length: 300000, bytes: [0xe0, 0xa7, 0x12] },
];

for (const { length, bytes } of headers) {
  test(`encodeFrame header for length ${length}`, (t) => {
    const payload = payloadOf(length);
    const frame = encodeFrame(payload);
    const protobufHeader = Buffer.from(protobuf.Writer.create().uint32(length).finish());

    t.deepEqual([...protobufHeader], bytes);
    t.deepEqual([...frame.subarray(0, bytes.length)], bytes);
    t.is(frame.length, bytes.length + length);
    t.true(frame.subarray(bytes.length).equals(payload));
  });

  test(`frame round trip of ${length} bytes`, (t) => {
    const payload = payloadOf(length);
    const decoder = new FrameDecoder(300000);
    const frames = decoder.push(encodeFrame(payload));

    t.is(frames.length, 1);
    t.true(frames[0]!.equals(payload));
    t.is(decoder.bufferedBytes, 0);
  });
}

test('frame split byte by byte', (t) => {
  const payload = payloadOf(200);
  const frame = encodeFrame(payload);
  const decoder = new FrameDecoder(1024);

  for (let i = 0; i < frame.length - 1; i++) {
    t.deepEqual(decoder.push(frame.subarray(i, i + 1)), [], `byte ${i} completed a frame early`);
  }
  t.is(decoder.bufferedBytes, payload.length - 1);

  const frames = decoder.push(frame.subarray(frame.length - 1));
  t.is(frames.length, 1);
  t.true(frames[0]!.equals(payload));
  t.is(decoder.bufferedBytes, 0);
});

test('several frames in one chunk', (t) => {
  const payloads = [payloadOf(5), payloadOf(0), payloadOf(130), payloadOf(1)];
  const partial = payloadOf(40);
  const partialFrame = encodeFrame(partial);
  const chunk = Buffer.concat([...payloads.map(encodeFrame), partialFrame.subarray(0, 10)]);
  const decoder = new FrameDecoder(1024);

  const frames = decoder.push(chunk);
  t.is(frames.length, payloads.length);
  for (const [index, payload] of payloads.entries()) {
    t.true(frames[index]!.equals(payload), `frame ${index} differs`);
  }
  // The varint of the partial frame is consumed, so only its 9 payload bytes stay buffered.
  t.is(decoder.bufferedBytes, 9);

  const rest = decoder.push(partialFrame.subarray(10));
  t.is(rest.length, 1);
  t.true(rest[0]!.equals(partial));
  t.is(decoder.bufferedBytes, 0);
});

test('length prefix split across chunks', (t) => {
  const payload = payloadOf(300);
  const frame = encodeFrame(payload);
  const decoder = new FrameDecoder(1024);
  t.is(headerLength(frame), 2);

  t.deepEqual(decoder.push(frame.subarray(0, 1)), []);
  t.is(decoder.bufferedBytes, 1);

  const frames = decoder.push(frame.subarray(1));
  t.is(frames.length, 1);
  t.true(frames[0]!.equals(payload));
});

test('zero-length payload', (t) => {
  const decoder = new FrameDecoder(1024);
  const frames = decoder.push(Buffer.from([0x00, 0x00, 0x01, 0xaa]));

  t.is(frames.length, 3);
  t.is(frames[0]!.length, 0);
  t.is(frames[1]!.length, 0);
  t.deepEqual([...frames[2]!], [0xaa]);
});

test('five-byte varint length accepted', (t) => {
  // The length 3 written in five bytes. protobufjs's Reader also reads this padded form as 3.
  const decoder = new FrameDecoder(1024);
  const frames = decoder.push(Buffer.from([0x83, 0x80, 0x80, 0x80, 0x00, 0x01, 0x02, 0x03]));

  t.is(frames.length, 1);
  t.deepEqual([...frames[0]!], [0x01, 0x02, 0x03]);
});

test('maximum frame size accepted', (t) => {
  const payload = payloadOf(1024);
  const decoder = new FrameDecoder(1024);
  const frames = decoder.push(encodeFrame(payload));

  t.is(frames.length, 1);
  t.true(frames[0]!.equals(payload));
});

test('oversized frame rejected at header', (t) => {
  const frame = encodeFrame(payloadOf(1025));
  const decoder = new FrameDecoder(1024);

  const error = t.throws<CdrError>(() => decoder.push(frame.subarray(0, headerLength(frame))), { instanceOf: CdrError });
  t.is(error?.code, 'ERR_PROTO_FRAME_TOO_LARGE');
  t.deepEqual(error?.details, { length: 1025, maxFrameBytes: 1024 });
  t.regex(error?.message ?? '', /1025 bytes exceeds the maximum of 1024 bytes/);
});

test('length 2^32-1 rejected as too large', (t) => {
  const decoder = new FrameDecoder(4 * 1024 * 1024);
  const error = t.throws<CdrError>(() => decoder.push(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x0f])), { instanceOf: CdrError });

  t.is(error?.code, 'ERR_PROTO_FRAME_TOO_LARGE');
  t.is(error?.details['length'], 0xffffffff);
});

test('six-byte varint is malformed', (t) => {
  const decoder = new FrameDecoder(1024);
  const error = t.throws<CdrError>(() => decoder.push(Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01])), { instanceOf: CdrError });

  t.is(error?.code, 'ERR_PROTO_MALFORMED_FRAME');
});

test('six-byte varint fails at fifth byte', (t) => {
  const decoder = new FrameDecoder(1024);
  for (let i = 0; i < 4; i++) {
    t.deepEqual(decoder.push(Buffer.from([0x80])), []);
  }

  const error = t.throws<CdrError>(() => decoder.push(Buffer.from([0x80])), { instanceOf: CdrError });
  t.is(error?.code, 'ERR_PROTO_MALFORMED_FRAME');
});

const failures = [
  { name: 'too large', chunk: encodeFrame(payloadOf(1025)).subarray(0, 2), code: 'ERR_PROTO_FRAME_TOO_LARGE' },
  { name: 'malformed varint', chunk: Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x01]), code: 'ERR_PROTO_MALFORMED_FRAME' },
] as const;

for (const failure of failures) {
  test(`decoder unusable after ${failure.name}`, (t) => {
    const decoder = new FrameDecoder(1024);
    const first = t.throws<CdrError>(() => decoder.push(failure.chunk), { instanceOf: CdrError });
    t.is(first?.code, failure.code);

    for (const chunk of [encodeFrame(payloadOf(3)), Buffer.alloc(0), encodeFrame(payloadOf(0))]) {
      const later = t.throws<CdrError>(() => decoder.push(chunk), { instanceOf: CdrError });
      t.is(later?.code, 'ERR_PROTO_MALFORMED_FRAME');
      t.regex(later?.message ?? '', /already failed/);
    }
  });
}
