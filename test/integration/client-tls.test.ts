/**
 * tcps and wss dialing: the client verifies the server's certificate with the `tls` options, handshakes,
 * and a request gets its answer. The server here is a minimal Socket.D peer over TLS (Connect → Connack,
 * Request → ReplyEnd echo) using the shared codec and transport adapters, with a throwaway self-signed
 * certificate made by openssl; the test is skipped when openssl is missing.
 */
import test, { after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, SocketdError } from '../../src/client/index.js';
import { DEFAULT_FRAME_LIMITS, Flag, FrameDecoder, MessageDecoder, encodeFrame, Frame, type FrameError } from '../../src/protocol/index.js';
import type { Connection, ConnectionHandler, Listener } from '../../src/transport/connection.js';
import { TcpListener } from '../../src/transport/tcp.js';
import { WsListener } from '../../src/transport/ws-listener.js';

function makeCert(): { key: Buffer; cert: Buffer } | null {
  const dir = mkdtempSync(join(tmpdir(), 'sd-client-tls-'));
  try {
    execFileSync('openssl', [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'),
    ], { stdio: 'ignore' });
    return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) };
  } catch {
    return null;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Answers Connect with Connack and each Request with a ReplyEnd echoing its data. */
class EchoPeer implements ConnectionHandler {
  private readonly stream = new FrameDecoder(DEFAULT_FRAME_LIMITS);
  private readonly message = new MessageDecoder(DEFAULT_FRAME_LIMITS);
  constructor(private readonly connection: Connection) {}
  connectionOnData(data: Buffer): void {
    if (this.connection.framing === 'stream') this.stream.push(data, this);
    else {
      const r = this.message.decode(data);
      if (r instanceof Frame) this.onFrame(r);
    }
  }
  onFrame(f: Frame): void {
    if (f.flag === Flag.Connect) this.connection.write(encodeFrame({ flag: Flag.Connack, sid: f.sid, event: f.event, meta: 'Socket.D=1.0', data: f.data }));
    else if (f.flag === Flag.Request) this.connection.write(encodeFrame({ flag: Flag.ReplyEnd, sid: f.sid, event: f.event, data: f.data }));
    else if (f.flag === Flag.Close) this.connection.end('client closed');
  }
  onFrameError(_e: FrameError): void {}
  connectionOnDrain(): void {}
  connectionOnInvalid(): void {}
  connectionOnClose(): void {}
}

const pem = makeCert();

describe('client: tcps and wss', { skip: pem === null ? 'openssl not available' : false }, () => {
  const listeners: Listener[] = [];
  const port = { tcps: 0, wss: 0 };
  before(async () => {
    const tlsOptions = { key: pem!.key, cert: pem!.cert };
    const accept = (c: Connection): void => c.start(new EchoPeer(c));
    const tcps = new TcpListener({ host: '127.0.0.1', port: 0, tls: tlsOptions }, accept);
    const wss = new WsListener({ host: '127.0.0.1', port: 0, tls: tlsOptions, maxPayload: 1 << 20 }, accept);
    listeners.push(tcps, wss);
    port.tcps = (await tcps.listen()).port;
    port.wss = (await wss.listen()).port;
  });
  after(async () => {
    await Promise.all(listeners.map((l) => l.close()));
  });

  for (const scheme of ['tcps', 'wss'] as const) {
    test(`${scheme}: connects with the CA given in tls, and a request is answered`, async () => {
      const client = await connect(`sd:${scheme}://localhost:${port[scheme]}${scheme === 'wss' ? '/' : ''}`, { tls: { ca: pem!.cert } });
      try {
        assert.equal(client.connected, true);
        const reply = await client.request('echo', 'over tls');
        assert.equal(reply.text(), 'over tls');
      } finally {
        await client.close();
      }
    });

    test(`${scheme}: an untrusted certificate fails with connect_failed`, async () => {
      await assert.rejects(connect(`sd:${scheme}://127.0.0.1:${port[scheme]}/`, { connectTimeout: 3000 }), (e: SocketdError) => {
        assert.equal(e.code, 'connect_failed');
        assert.match(e.message, /self.signed|certificate/i);
        return true;
      });
    });
  }
});
