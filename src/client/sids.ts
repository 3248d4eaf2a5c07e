/**
 * The sids of one client (spec §1 leaves their form open): 16 random hex chars, then a 16-hex counter, so 32
 * hex like the reference client's and unique per client. Hot path: a sid is kept as its 32 ASCII bytes and
 * copied into each frame head, and an answer's sid is read back from the frame's bytes as its counter, so
 * neither sending nor matching an answer builds a string.
 */

export const SID_BYTES = 32;
const PREFIX_BYTES = 16;
const FIRST = 0x30; // '0'
const NINE = 0x39; // '9'
const A = 0x61; // 'a'
const F = 0x66; // 'f'

/** Value of each byte as a lower-case hex digit, -1 for any other byte (upper case is not ours). */
const HEX_VALUE = new Int8Array(256).fill(-1);
for (let i = 0; i < 10; i++) HEX_VALUE[FIRST + i] = i;
for (let i = 0; i < 6; i++) HEX_VALUE[A + i] = 10 + i;

/** `bytes` random bytes as hex, from Web Crypto (global in Node 20 and in browsers). */
function randomHex(bytes: number): string {
  const out = new Uint8Array(bytes);
  globalThis.crypto.getRandomValues(out);
  let hex = '';
  for (let i = 0; i < out.length; i++) hex += out[i]!.toString(16).padStart(2, '0');
  return hex;
}

export class SidSource {
  /** The next sid's 32 ASCII bytes; its counter half is incremented in place by {@link take}. */
  private readonly current = new Uint8Array(SID_BYTES);
  private readonly prefix: string;
  private count = 0;

  /** `prefix` and `first` are for tests: by default a random prefix, and counting from 0. */
  constructor(prefix: string = randomHex(PREFIX_BYTES / 2), first = 0) {
    if (prefix.length !== PREFIX_BYTES || !/^[0-9a-f]+$/.test(prefix)) throw new Error(`sid prefix must be ${PREFIX_BYTES} lower-case hex digits`);
    if (!Number.isSafeInteger(first) || first < 0) throw new Error('the first sid number must be a safe non-negative integer');
    this.prefix = prefix;
    this.count = first;
    const text = this.text(first);
    for (let i = 0; i < SID_BYTES; i++) this.current[i] = text.charCodeAt(i);
  }

  /** Writes the next sid's 32 bytes at `buf[offset]` and returns its number. */
  take(buf: Uint8Array, offset: number): number {
    buf.set(this.current, offset);
    return this.advance();
  }

  /** Takes the next sid as text. */
  takeText(): string {
    return this.text(this.advance());
  }

  /** Consumes the next sid unused; returns its number. */
  advance(): number {
    const current = this.current;
    // Increment the hex counter in place: amortised one byte per sid.
    for (let i = SID_BYTES - 1; i >= PREFIX_BYTES; i--) {
      const c = current[i]!;
      if (c === NINE) {
        current[i] = A;
        break;
      }
      if (c !== F) {
        current[i] = c + 1;
        break;
      }
      current[i] = FIRST;
    }
    return this.count++;
  }

  /** The sid with number `n` as text (for errors and the handshake). */
  text(n: number): string {
    return this.prefix + n.toString(16).padStart(SID_BYTES - PREFIX_BYTES, '0');
  }

  /**
   * The number of the sid held in `buf[start, end)` when it is one of ours, else -1. Exact: it returns n only
   * for the very bytes {@link take} wrote for n (prefix and lower-case hex), so it matches what comparing the
   * decoded sid with ours as strings would.
   */
  parse(buf: Uint8Array, start: number, end: number): number {
    if (end - start !== SID_BYTES) return -1;
    const prefix = this.current;
    for (let i = 0; i < PREFIX_BYTES; i++) if (buf[start + i] !== prefix[i]) return -1;
    // Two 32-bit halves: 16 hex digits exceed the 53 bits of a double only past 2^53 sids.
    let high = 0;
    let low = 0;
    for (let i = start + PREFIX_BYTES; i < start + 24; i++) {
      const v = HEX_VALUE[buf[i]!]!;
      if (v < 0) return -1;
      high = high * 16 + v;
    }
    for (let i = start + 24; i < end; i++) {
      const v = HEX_VALUE[buf[i]!]!;
      if (v < 0) return -1;
      low = low * 16 + v;
    }
    return high * 0x1_0000_0000 + low;
  }
}
