/**
 * The shared framed Unix-socket server behind the control socket and the pairing socket, tested with
 * real control messages on a socket in a temporary folder. Replies keep the request id, handler errors
 * become error replies, and a bad frame closes the connection.
 */

import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import test from 'ava';

import { proto } from '../modules/protocol/constants.js';
import { encodeFrame, FrameDecoder } from '../modules/protocol/framing.js';
import type { impcdr } from '../modules/protocol/generated/messages.js';
import { CdrError } from '../services/common/errors.js';
import { FramedSocketServer } from '../services/common/framed-socket-server.js';
import { createLogger } from '../services/common/logger.js';

const MAX_FRAME_BYTES = 1024;

/** Starts a server whose handler returns a status for `status` and throws for `lookup` and `pairStatus`. */
async function startServer(t: { teardown(fn: () => Promise<void> | void): void }): Promise<string> {
  const dir = mkdtempSync(join(tmpdir(), 'imp-cdr-framed-'));
  const path = join(dir, 'run', 'test.sock');
  const server = new FramedSocketServer<impcdr.v1.ControlRequest, impcdr.v1.IControlResponse>(
    {
      maxFrameBytes: MAX_FRAME_BYTES,
      decode: (frame) => proto.ControlRequest.decode(frame),
      encode: (response) => proto.ControlResponse.encode(response).finish(),
      async handle(request) {
        if (request.body === 'lookup') {
          throw new CdrError('ERR_KEY_INVALID', 'key "x" is invalid');
        }
        if (request.body === 'pairStatus') {
          throw new Error('unexpected failure');
        }
        return { status: { nodeId: 'node-test' } };
      },
      fallbackErrorCode: 'ERR_CONTROL_REQUEST',
      labels: { socket: 'test socket', connection: 'test connection', request: 'test request', requestType: 'ControlRequest' },
    },
    createLogger('test', 'silent'),
  );
  await server.listen(path);
  t.teardown(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return path;
}

/** Connects and returns a function that reads the next response, or null once the server closed. */
async function open(path: string): Promise<{ socket: Socket; next(): Promise<impcdr.v1.ControlResponse | null> }> {
  const socket = connect(path);
  await new Promise<void>((resolveConnect, rejectConnect) => {
    socket.once('connect', resolveConnect);
    socket.once('error', rejectConnect);
  });
  const decoder = new FrameDecoder(64 * 1024);
  const queue: Array<impcdr.v1.ControlResponse | null> = [];
  const waiters: Array<(response: impcdr.v1.ControlResponse | null) => void> = [];
  const deliver = (response: impcdr.v1.ControlResponse | null) => {
    const waiter = waiters.shift();
    if (waiter) {
      waiter(response);
    } else {
      queue.push(response);
    }
  };
  socket.on('data', (chunk: Buffer) => decoder.push(chunk).forEach((frame) => deliver(proto.ControlResponse.decode(frame))));
  socket.on('close', () => deliver(null));
  socket.on('error', () => undefined);
  return {
    socket,
    next: () => (queue.length > 0 ? Promise.resolve(queue.shift()!) : new Promise((resolveNext) => waiters.push(resolveNext))),
  };
}

test('replies keep the request id', async (t) => {
  const path = await startServer(t);
  t.is(statSync(path).mode & 0o777, 0o660);
  const client = await open(path);
  t.teardown(() => client.socket.destroy());

  client.socket.write(encodeFrame(proto.ControlRequest.encode({ requestId: 7, status: {} }).finish()));
  const status = await client.next();
  t.is(status?.requestId, 7);
  t.is(status?.status?.nodeId, 'node-test');

  client.socket.write(encodeFrame(proto.ControlRequest.encode({ requestId: 8, lookup: { keys: [] } }).finish()));
  const invalid = await client.next();
  t.is(invalid?.requestId, 8);
  t.is(invalid?.error?.code, 'ERR_KEY_INVALID');
  t.is(invalid?.error?.message, 'key "x" is invalid');

  client.socket.write(encodeFrame(proto.ControlRequest.encode({ requestId: 9, pairStatus: {} }).finish()));
  const failed = await client.next();
  t.is(failed?.requestId, 9);
  t.is(failed?.error?.code, 'ERR_CONTROL_REQUEST', 'an error without a code gets the fallback code');
  t.is(failed?.error?.message, 'unexpected failure');
});

test('bad frames close the connection', async (t) => {
  const path = await startServer(t);
  const cases: Array<[string, Buffer]> = [
    ['frame one byte over the maximum', encodeFrame(Buffer.alloc(MAX_FRAME_BYTES + 1))],
    ['frame that is not a request', encodeFrame(Buffer.from([0xff, 0xff, 0xff]))],
  ];
  for (const [name, frame] of cases) {
    const client = await open(path);
    client.socket.write(frame);
    t.is(await client.next(), null, name);
  }

  // The server keeps serving other connections.
  const client = await open(path);
  t.teardown(() => client.socket.destroy());
  client.socket.write(encodeFrame(proto.ControlRequest.encode({ requestId: 1, status: {} }).finish()));
  t.is((await client.next())?.requestId, 1);
});

test('frame at the maximum is served', async (t) => {
  const path = await startServer(t);
  const client = await open(path);
  t.teardown(() => client.socket.destroy());
  const request = Buffer.from(proto.ControlRequest.encode({ requestId: 3, status: {} }).finish());
  // Field 1000, which ControlRequest does not define, pads the request to exactly the maximum size, and
  // decoders skip unknown fields. Its tag (1000 << 3 | 2) and its length are two-byte varints.
  const padding = MAX_FRAME_BYTES - request.length - 4;
  const padded = Buffer.concat([request, Buffer.from([0xc2, 0x3e, 0x80 | (padding & 0x7f), padding >> 7]), Buffer.alloc(padding)]);
  t.is(padded.length, MAX_FRAME_BYTES);
  client.socket.write(encodeFrame(padded));
  t.is((await client.next())?.requestId, 3);
});
