/**
 * Large ws messages as their parts (fastPaths.largeMessageParts, docs/operations.md): a Message of 64 KiB and
 * more that the broker reads over several socket reads is decoded and forwarded as those reads, never joined;
 * switched off, the parts are joined first. Either way every byte arrives, to a ws and to a tcp receiver, and
 * Requests of that size get their replies.
 */
import test, { describe } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, MessageDecoder, type Frame } from '../../src/protocol/index.js';
import { startTestBroker, eventually } from '../support/broker.js';
import { closeAll, connect } from '../support/integration.js';

const isMessage = (f: Frame): boolean => f.flag === Flag.Message;

function payload(size: number, seed: number): Buffer {
  const out = Buffer.alloc(size);
  for (let i = 0; i < size; i++) out[i] = (i * 31 + seed * 17 + (i >> 10)) & 0xff;
  return out;
}

for (const largeMessageParts of [true, false]) {
  describe(`fastPaths.largeMessageParts ${largeMessageParts}`, () => {
    test('large Messages from a ws sender reach ws and tcp receivers whole, in order', async (t) => {
      const decodeParts = t.mock.method(MessageDecoder.prototype, 'decodeParts');
      const server = await startTestBroker({ fastPaths: { largeMessageParts } });
      const sender = await connect(server, 'ws', { name: 'sender' });
      const viaWs = await connect(server, 'ws', { name: 'rx-ws' });
      const viaTcp = await connect(server, 'tcp', { name: 'rx-tcp' });
      try {
        const sizes = [300_001, 70_000, 1_048_576, 100];
        const sent = sizes.map((size, i) => payload(size, i));
        for (const [i, data] of sent.entries()) {
          sender.send({ flag: Flag.Message, event: 'big', meta: '@=rx-ws', data, sid: `w${i}` });
          sender.send({ flag: Flag.Message, event: 'big', meta: '@=rx-tcp', data, sid: `t${i}` });
        }
        await eventually(() => viaWs.frames.filter(isMessage).length === sizes.length && viaTcp.frames.filter(isMessage).length === sizes.length, 10_000, 'every Message');
        for (const receiver of [viaWs, viaTcp]) {
          const got = receiver.frames.filter(isMessage);
          assert.deepEqual(got.map((f) => f.data.length), sizes);
          got.forEach((f, i) => assert.ok(f.data.equals(sent[i]!), `Message ${i} byte for byte`));
        }
        if (largeMessageParts) assert.ok(decodeParts.mock.callCount() > 0, 'some large Message came in parts and was decoded as them');
        else assert.equal(decodeParts.mock.callCount(), 0, 'switched off: parts are joined first');
      } finally {
        closeAll(sender, viaWs, viaTcp);
        await server.close();
      }
    });
  });
}
