// The README's 30-second tour: a service on ws and a caller on tcp, talking through a running broker.
// Usage: node examples/tour.mjs [host] [tcpPort] [wsPort] — defaults: 127.0.0.1, the broker's tcp 8602 and ws 8604.
import net from 'node:net';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import { Flag, FrameDecoder, MessageDecoder, DEFAULT_FRAME_LIMITS, encodeFrame } from '../dist/src/protocol/index.js';

const host = process.argv[2] ?? '127.0.0.1';
const tcpPort = Number(process.argv[3] ?? 8602);
const wsPort = Number(process.argv[4] ?? 8604);
const sid = () => randomUUID().replace(/-/g, '');
const connectFrame = (url) => encodeFrame({ flag: Flag.Connect, sid: sid(), event: url, meta: 'Socket.D=1.0', data: url });

// The service: named `svc` over WebSocket, answers every request.
const ws = new WebSocket(`ws://${host}:${wsPort}/?@=svc`, ['Socket.D']);
const wsDecoder = new MessageDecoder(DEFAULT_FRAME_LIMITS);
await new Promise((resolve, reject) => { ws.once('open', resolve); ws.once('error', reject); });
ws.send(connectFrame(`ws://${host}:${wsPort}/?@=svc`));
ws.on('message', (data) => {
  const frame = wsDecoder.decode(data);
  if (frame.flag !== Flag.Request) return;
  console.log(`svc  got request '${frame.event}' data='${frame.data}'`);
  ws.send(encodeFrame({ flag: Flag.ReplyEnd, sid: frame.sid, event: frame.event, data: `re:${frame.data}` }));
});

// The caller: anonymous over tcp.
const socket = net.connect(tcpPort, host);
const decoder = new FrameDecoder(DEFAULT_FRAME_LIMITS);
let requestSid = '';
socket.on('data', (chunk) => decoder.push(chunk, {
  onFrameError: (error) => { console.error('bad frame', error.message); process.exit(1); },
  onFrame: (frame) => {
    if (frame.flag === Flag.Connack) {
      setTimeout(() => { // give svc's handshake a moment
        requestSid = sid();
        socket.write(encodeFrame({ flag: Flag.Request, sid: requestSid, event: 'hello', meta: '@=svc', data: 'req-1' }));
      }, 100);
    } else if (frame.sid === requestSid) {
      console.log(`caller got ${frame.flag === Flag.ReplyEnd ? 'ReplyEnd' : `flag ${frame.flag}`} data='${frame.data}'`);
      socket.end();
      ws.close();
    }
  },
}));
socket.write(connectFrame(`tcp://${host}:${tcpPort}`));
