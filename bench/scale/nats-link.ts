/**
 * A raw NATS client connection for the scale bench's nats-server comparison (bench/scale.ts `--system=nats`):
 * the protocol's text lines over tcp (INFO, CONNECT, PING, PONG; https://docs.nats.io/reference/reference-protocols/nats-protocol),
 * nothing else, so that the comparison measures the server's cost per idle connection and per heartbeat as
 * the Socket.D raw client does for this broker. Answers the server's own PINGs.
 */
import net from 'node:net';

const PING_LINE = Buffer.from('PING\r\n');
const PONG_LINE = Buffer.from('PONG\r\n');

export class NatsLink {
  /** Called for each PONG after the connection is open (the answers to our heartbeats). */
  onPong: () => void = () => {};
  onClose: () => void = () => {};
  /** Resolves once the server answered the first PING after CONNECT (the session is established). */
  readonly opened: Promise<void>;
  private readonly socket: net.Socket;
  private rest = '';
  private open = false;

  constructor(host: string, port: number, localAddress: string, name: string) {
    this.socket = net.connect({ host, port, localAddress, noDelay: true });
    this.opened = new Promise((resolve, reject) => {
      this.socket.once('error', reject);
      this.socket.on('data', (chunk: Buffer) => {
        const lines = (this.rest + chunk.toString('latin1')).split('\r\n');
        this.rest = lines.pop() ?? '';
        for (const line of lines) {
          if (line.startsWith('INFO ')) {
            this.socket.write(`CONNECT {"verbose":false,"pedantic":false,"name":${JSON.stringify(name)}}\r\nPING\r\n`);
          } else if (line === 'PING') {
            this.socket.write(PONG_LINE);
          } else if (line === 'PONG') {
            if (this.open) this.onPong();
            else {
              this.open = true;
              resolve();
            }
          } else if (line.startsWith('-ERR')) {
            reject(new Error(line));
          }
        }
      });
    });
    this.opened.catch(() => {});
    this.socket.on('error', () => {});
    this.socket.on('close', () => this.onClose());
  }

  ping(): void {
    this.socket.write(PING_LINE);
  }

  close(): void {
    this.socket.destroy();
  }
}
