/**
 * The JavaScript reference client's quick start against socketd-broker over ws (docs/clients.md,
 * "JavaScript"): send, sendAndRequest and sendAndSubscribe from a caller to a service named `svc`, both
 * reference clients. It runs the client's browser bundle (release/socket.d.js of the reference repository,
 * not part of this one) in Node, with the `ws` package standing in for the browser's WebSocket.
 *
 *     node examples/javascript/quickstart.cjs /path/to/socket.d.js [sd:ws://127.0.0.1:8604/]
 *
 * Prints what each step got and exits 0 only when every step got what it expected.
 */
const bundle = process.argv[2];
const url = process.argv[3] || 'sd:ws://127.0.0.1:8604/';
if (!bundle) {
  console.error('usage: node examples/javascript/quickstart.cjs /path/to/socket.d.js [ws URL]');
  process.exit(2);
}
globalThis.window = globalThis;
globalThis.WebSocket = require('ws');
require(require('node:path').resolve(bundle));
const { SocketD } = globalThis;

async function main() {
  const got = [];
  const svc = await SocketD.createClient(`${url}?@=svc`).listen(SocketD.newEventListener().doOn('hello', (s, m) => {
    if (m.isRequest()) s.replyEnd(m, SocketD.newEntity(`re:${m.dataAsString()}`));
    else if (m.isSubscribe()) {
      for (let i = 0; i < 3; i++) s.reply(m, SocketD.newEntity(`part${i}`));
      s.replyEnd(m, SocketD.newEntity('end'));
    } else got.push(m.dataAsString());
  })).open();
  const caller = await SocketD.createClient(url).open();
  const to = (text) => SocketD.newEntity(text).metaPut('@', 'svc');

  caller.send('hello', to('m1'));
  const reply = await new Promise((resolve, reject) => caller.sendAndRequest('hello', to('q1')).thenReply(resolve).thenError(reject));
  const parts = await new Promise((resolve, reject) => {
    const seen = [];
    caller.sendAndSubscribe('hello', to('s1')).thenReply((r) => {
      seen.push(r.dataAsString());
      if (r.isEnd()) resolve(seen);
    }).thenError(reject);
  });
  await new Promise((r) => setTimeout(r, 200));
  const results = [
    ['send', JSON.stringify(got) === '["m1"]', got],
    ['sendAndRequest', reply.dataAsString() === 're:q1', reply.dataAsString()],
    ['sendAndSubscribe', JSON.stringify(parts) === '["part0","part1","part2","end"]', parts],
  ];
  console.log(`socket.d ${SocketD.version()} (JavaScript) on Node ${process.version}, ${url}`);
  for (const [step, ok, value] of results) console.log(`  ${ok ? 'ok  ' : 'FAIL'} ${step}: ${JSON.stringify(value)}`);
  await caller.close();
  await svc.close();
  return results.every(([, ok]) => ok) ? 0 : 1;
}

main().then((code) => process.exit(code), (error) => {
  console.error('FAIL', error);
  process.exit(1);
});
