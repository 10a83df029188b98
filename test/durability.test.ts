import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

import test from 'ava';

import { kindToWire } from '../modules/protocol/constants.js';
import {
  cdrctl,
  connectReady,
  enroll,
  REPOSITORY_MAIN,
  removeNode,
  restartNode,
  startNode,
  type TestNode,
} from './helpers/node.js';

test('acknowledged batches survive SIGKILL', async (t) => {
  let node: TestNode = await startNode();
  try {
    const bundle = await enroll(node, 'imp-durable');
    const client = await connectReady(node, bundle, 'imp-durable');
    const keys = Array.from({ length: 50 }, (_, i) => `192.0.2.${i + 1}`);
    const acknowledged = new Map<string, number>(keys.map((key) => [key, 0]));

    // Keep 32 batches in flight, below the server's limit of 64, and kill the server mid-stream.
    let killed = false;
    let sequence = 0;
    const send = async (): Promise<void> => {
      while (!killed && sequence < 2000) {
        sequence += 1;
        const key = keys[sequence % keys.length]!;
        const messages = (sequence % 7) + 1;
        const observe = { sequence, observations: [{ object: { kind: kindToWire('ip'), key }, intervalStartMs: Date.now(), counters: { messages } }] };
        const answer = await client.request({ observe }).catch(() => undefined);
        if (answer?.observeAck && !answer.observeAck.duplicate) {
          acknowledged.set(key, acknowledged.get(key)! + messages);
        }
      }
    };
    const senders = Array.from({ length: 32 }, () => send());
    while (sequence < 300) {
      await new Promise((resolveWait) => setTimeout(resolveWait, 5));
    }
    await node.kill();
    killed = true;
    await Promise.all(senders);

    const total = [...acknowledged.values()].reduce((sum, value) => sum + value, 0);
    t.true(total > 0, 'some batches were acknowledged before the kill');

    node = await restartNode(node);
    const checker = await connectReady(node, bundle, 'imp-durable');
    const answer = await checker.request({ lookup: { keys: keys.map((key) => ({ kind: kindToWire('ip'), key })) } });
    let recovered = 0;
    answer.lookupResponse!.results!.forEach((result, index) => {
      const count = Number(result.reputation?.counters?.messages ?? 0);
      recovered += count;
      // Every acknowledged count is there; batches in flight at the kill may have landed too.
      t.true(count >= acknowledged.get(keys[index]!)!, `${keys[index]}: ${count} < ${acknowledged.get(keys[index]!)}`);
    });
    t.true(recovered >= total);

    // The IMP learns where to continue, so nothing it re-sends is counted twice.
    const hello = checker.received[0]?.helloAccepted;
    t.true(Number(hello?.lastSequence) >= 250, `last sequence ${hello?.lastSequence}`);
    await checker.close();
  } finally {
    await node.stop();
    removeNode(node);
  }
});

test('second process on the same index reports the lock', async (t) => {
  const node = await startNode();
  try {
    const second = spawn(process.execPath, [REPOSITORY_MAIN, '--config', node.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    second.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolveExit) => second.once('exit', resolveExit));

    t.is(code, 1);
    t.regex(stderr, /ERR_INDEX_LOCKED: another process holds the index/);
    const status = await cdrctl(node, ['status', '--json']);
    t.is(status.code, 0, 'the first process still serves');
  } finally {
    await node.stop();
    removeNode(node);
  }
});

test('policy set validates before it applies', async (t) => {
  const node = await startNode();
  try {
    const shown = await cdrctl(node, ['policy', 'show']);
    t.is(shown.code, 0);
    t.regex(shown.stdout, /^# version 1,/);
    const current = shown.stdout.split('\n').slice(1).join('\n');

    const cases = [
      { name: 'unknown.yaml', text: current.replace('version: 1', 'version: 2\nweigths: {}'), code: 'ERR_POLICY_INVALID', line: /unknown\.yaml:7:1/ },
      { name: 'same.yaml', text: current, code: 'ERR_POLICY_VERSION_NOT_NEWER', line: /version 1 is not above/ },
      { name: 'order.yaml', text: current.replace('version: 1', 'version: 2').replace('suspect: -20', 'suspect: 50'), code: 'ERR_POLICY_INVALID', line: /malicious <= suspect < trusted/ },
      { name: 'broken.yaml', text: 'version: [2\n', code: 'ERR_POLICY_PARSE', line: /broken\.yaml:/ },
    ];
    for (const bad of cases) {
      const path = join(node.dir, bad.name);
      writeFileSync(path, bad.text);
      const result = await cdrctl(node, ['policy', 'set', path]);
      t.is(result.code, 1, bad.name);
      t.true(result.stderr.includes(bad.code), `${bad.name}: ${result.stderr}`);
      t.regex(result.stderr, bad.line);
    }
    t.regex((await cdrctl(node, ['policy', 'show'])).stdout, /^# version 1,/, 'the policy in force is unchanged');

    const stricter = join(node.dir, 'stricter.yaml');
    writeFileSync(stricter, current.replace('version: 1', 'version: 2').replace('minMessages: 5', 'minMessages: 1'));
    const applied = await cdrctl(node, ['policy', 'set', stricter]);
    t.is(applied.code, 0, applied.stderr);
    t.regex(applied.stdout, /policy version 2 is in force/);
    const lookup = JSON.parse((await cdrctl(node, ['lookup', '--json', 'ip', '192.0.2.1'])).stdout) as { policyVersion: number };
    t.is(lookup.policyVersion, 2);

    // The output of `policy show`, header line included, can be edited and applied as it is.
    const roundTrip = join(node.dir, 'round-trip.yaml');
    writeFileSync(roundTrip, (await cdrctl(node, ['policy', 'show'])).stdout.replace('version: 2', 'version: 3'));
    t.is((await cdrctl(node, ['policy', 'set', roundTrip])).code, 0);
    const shownAgain = (await cdrctl(node, ['policy', 'show'])).stdout;
    t.regex(shownAgain, /^# version 3,/);
    t.is(shownAgain.match(/^# version \d+, applied/gm)?.length, 1);
  } finally {
    await node.stop();
    removeNode(node);
  }
});

test('bad configuration stops the start with key and line', async (t) => {
  const node = await startNode();
  await node.stop();
  try {
    writeFileSync(node.configPath, 'paths:\n  state: .\nlimits:\n  maxInFlight: 0\n');
    const child = spawn(process.execPath, [REPOSITORY_MAIN, '--config', node.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => {
      stderr += chunk.toString();
    });
    const code = await new Promise<number | null>((resolveExit) => child.once('exit', resolveExit));

    t.is(code, 78);
    t.regex(stderr, /cdr\.yaml:4:16: limits\.maxInFlight must be an integer from 1 to 4096, got 0/);
  } finally {
    removeNode(node);
  }
});
