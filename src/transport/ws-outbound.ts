/**
 * The ws adapter's outbound framing (RFC 6455 §5.2): a tick's queued frames, given as ranges (ws.ts, six slots
 * per frame), become WebSocket data frames written in as few socket writes as possible. Small frames are
 * copied, header and payload (masked on the client side), into buffers of up to COALESCE_LIMIT bytes; large
 * unmasked bodies are written as they are, uncopied. Several buffers go out corked, as one writev.
 */
import type net from 'node:net';
import type { PendingSlots } from './pending-pool.js';
import { copyRange, maskCopyRange, writeWsHeader, wsHeaderLength } from './ws-framing.js';

/** Pending frames are copied into buffers of up to this many bytes, each written with one call. */
const COALESCE_LIMIT = 64 * 1024;
/** Unmasked (server) bodies at least this large are written as they are, without a copy. */
export const LARGE_BODY = 16 * 1024;

function corkOnce(socket: net.Socket): true {
  socket.cork();
  return true;
}

/**
 * Writes the `count` slots of `pending` to `socket` as WebSocket frames, masked when `masked` (the client
 * side). `copyBytes` is what will be copied (all but large unmasked bodies): it sizes the buffers. Every write
 * reports to `done` when given. Precondition: the socket is writable.
 */
export function writeFramed(socket: net.Socket, pending: PendingSlots, count: number, copyBytes: number, masked: boolean, done: (() => void) | undefined): void {
  let remaining = copyBytes;
  let out: Buffer | null = null;
  let outStart = 0;
  let offset = 0;
  let corked = false;
  for (let i = 0; i < count; i += 6) {
    const head = pending[i] as Buffer;
    const headStart = pending[i + 1] as number;
    const headEnd = pending[i + 2] as number;
    const body = pending[i + 3] as Buffer | null;
    const bodyStart = pending[i + 4] as number;
    const bodyEnd = pending[i + 5] as number;
    const headLength = headEnd - headStart;
    const bodyLength = body === null ? 0 : bodyEnd - bodyStart;
    const length = headLength + bodyLength;
    const headerLength = wsHeaderLength(length, masked);
    const bodyApart = !masked && bodyLength >= LARGE_BODY;
    const copied = headerLength + headLength + (bodyApart ? 0 : bodyLength);
    if (out === null || offset + copied > out.length) {
      if (out !== null && offset > outStart) {
        if (!corked) corked = corkOnce(socket);
        socket.write(out.subarray(outStart, offset), done);
      }
      out = Buffer.allocUnsafe(Math.max(copied, Math.min(remaining, COALESCE_LIMIT)));
      outStart = 0;
      offset = 0;
    }
    remaining -= copied;
    const keyAt = offset + headerLength - 4;
    offset = writeWsHeader(out, offset, length, masked);
    if (masked) {
      maskCopyRange(head, headStart, headEnd, out, offset, keyAt, 0);
      offset += headLength;
      if (body !== null) {
        maskCopyRange(body, bodyStart, bodyEnd, out, offset, keyAt, headLength);
        offset += bodyLength;
      }
    } else {
      copyRange(head, headStart, headEnd, out, offset);
      offset += headLength;
      if (bodyApart) {
        // The header and head so far go first, then the body uncopied; the buffer's rest stays in use.
        if (!corked) corked = corkOnce(socket);
        socket.write(out.subarray(outStart, offset), done);
        socket.write(bodyStart === 0 && bodyEnd === body!.length ? body! : body!.subarray(bodyStart, bodyEnd), done);
        outStart = offset;
      } else if (body !== null) {
        copyRange(body, bodyStart, bodyEnd, out, offset);
        offset += bodyLength;
      }
    }
  }
  // Most ticks fill one buffer exactly (a Pong, one forwarded frame): written as it is, without a view.
  if (out !== null && offset > outStart) socket.write(outStart === 0 && offset === out.length ? out : out.subarray(outStart, offset), done);
  if (corked) socket.uncork();
}
