import test from 'node:test';
import assert from 'node:assert/strict';
import { Flag } from '../../src/protocol/index.js';
import { RawClient } from '../support/raw-client.js';
import { startTestBroker, ports } from '../support/broker.js';

test('a request over tcp reaches @svc on ws and its ReplyEnd comes back under the requester sid', async () => {
  const server = await startTestBroker();
  const p = ports(server);
  const svc = await RawClient.connect('ws', p.ws, { name: 'svc' });
  const caller = await RawClient.connect('tcp', p.tcp);
  try {
    const reqSid = caller.send({ flag: Flag.Request, event: 'hello', meta: '@=svc', data: 'req-1' });
    const forwarded = await svc.nextFlag(Flag.Request);
    assert.equal(forwarded.event, 'hello');
    assert.equal(forwarded.metaString, '@=svc');
    assert.equal(forwarded.data.toString(), 'req-1');
    assert.notEqual(forwarded.sid, reqSid, 'a fresh sid per hop');
    svc.send({ flag: Flag.ReplyEnd, sid: forwarded.sid, event: 'hello', data: 're:req-1' });
    const reply = await caller.nextFor(reqSid);
    assert.equal(reply.flag, Flag.ReplyEnd);
    assert.equal(reply.data.toString(), 're:req-1');
    assert.equal(server.broker.streams !== undefined, true);
    assert.equal(server.broker.pendingTimers, 0, 'the answered request left no deadline behind');
  } finally {
    svc.close();
    caller.close();
    await server.close();
  }
});
