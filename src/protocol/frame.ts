import { parseMeta, metaGet } from './meta.js';
import { FRAME_PREFIX_BYTES } from './limits.js';

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

/**
 * One decoded frame (spec §1): a view of the received bytes plus the offsets of its three separators.
 * sid, event, meta and data are decoded on first use and cached, so a frame that is forwarded unchanged
 * (spec §5, principle 7) costs no string decoding and no copy.
 *
 * The frame lies in `source[start, start + size)`: `source` is the chunk it was read in, so decoding a chunk
 * of many frames makes no Buffer view per frame, and a run of frames forwarded to one target can be written
 * as one range of that chunk (Connection.writeRange). `raw` makes the view when something asks for it.
 *
 * A large frame that arrived in several chunks may instead be kept as those chunks (`parts`, in order, whole
 * frame; `source` is then `parts[0]`, which holds the whole header, and `start` is 0): it is forwarded as
 * its parts without ever being copied into one buffer. `raw` and `data` join the parts on first use.
 */
export class Frame {
  private cachedRaw: Buffer | undefined = undefined;
  private cachedSid: string | undefined = undefined;
  private cachedEvent: string | undefined = undefined;
  private cachedMeta: string | undefined = undefined;
  private cachedData: Buffer | undefined = undefined;
  private metaMap: Map<string, string> | undefined = undefined;

  /**
   * Offsets other than `start` are relative to the frame's first byte.
   * @param source the bytes holding the frame (not modified afterwards: adapters never reuse a buffer)
   * @param start offset of the frame's length prefix in `source`
   * @param size the frame's whole length, prefix included
   * @param sidEnd offset of the separator after the sid (for an 8-byte frame: 8, and so are the others)
   * @param eventEnd offset of the separator after the event
   * @param metaEnd offset of the separator after the meta
   */
  constructor(
    readonly flag: number,
    readonly source: Buffer,
    readonly start: number,
    readonly size: number,
    readonly sidEnd: number,
    private readonly eventEnd: number,
    private readonly metaEnd: number,
    /** The frame's bytes as consecutive chunks (see above), or null when `source` holds them all. */
    readonly parts: readonly Buffer[] | null = null,
  ) {}

  /** The frame's whole bytes, length prefix included (a view of `source`). */
  get raw(): Buffer {
    if (this.cachedRaw === undefined) {
      const source = this.source;
      if (this.parts !== null) this.cachedRaw = Buffer.concat(this.parts, this.size);
      else this.cachedRaw = this.start === 0 && this.size === source.length ? source : source.subarray(this.start, this.start + this.size);
    }
    return this.cachedRaw;
  }

  /** Offset in `source` just past the frame. Precondition: no `parts`. */
  get end(): number {
    return this.start + this.size;
  }

  /** True for the 8-byte frames that carry no message (Ping, Pong). */
  get bare(): boolean {
    return this.size === FRAME_PREFIX_BYTES;
  }

  get sid(): string {
    if (this.cachedSid === undefined) this.cachedSid = this.text(FRAME_PREFIX_BYTES, this.sidEnd);
    return this.cachedSid;
  }

  get event(): string {
    if (this.cachedEvent === undefined) this.cachedEvent = this.text(this.sidEnd + 2, this.eventEnd);
    return this.cachedEvent;
  }

  /**
   * Takes `event` as this frame's event, without decoding, when the event's bytes equal `bytes` (its UTF-8
   * form): a sender's last event is usually its next one. Returns false, changing nothing, otherwise.
   * Precondition: `bytes` is the UTF-8 encoding of `event`.
   */
  adoptEvent(event: string, bytes: Buffer): boolean {
    if (this.cachedEvent !== undefined) return this.cachedEvent === event;
    const from = this.start + this.sidEnd + 2;
    const length = bytes.length;
    if (this.start + this.eventEnd - from !== length) return false;
    const source = this.source;
    for (let i = 0; i < length; i++) if (source[from + i] !== bytes[i]) return false;
    this.cachedEvent = event;
    return true;
  }

  /**
   * As adoptEvent(), for the meta string: takes `meta` as this frame's meta when the meta's bytes equal
   * `bytes` (a plain client sends the same `@=name` on every frame). Precondition: `bytes` is the UTF-8
   * encoding of `meta`.
   */
  adoptMeta(meta: string, bytes: Buffer): boolean {
    if (this.cachedMeta !== undefined) return this.cachedMeta === meta;
    const from = this.start + this.eventEnd + 2;
    const length = bytes.length;
    if (this.start + this.metaEnd - from !== length) return false;
    const source = this.source;
    for (let i = 0; i < length; i++) if (source[from + i] !== bytes[i]) return false;
    this.cachedMeta = meta;
    return true;
  }

  /** The event's bytes (a view of `source`). */
  eventBytes(): Buffer {
    return this.source.subarray(this.start + this.sidEnd + 2, this.start + this.eventEnd);
  }

  /** The meta string exactly as received (spec §1: forwarded verbatim). */
  get metaString(): string {
    if (this.cachedMeta === undefined) this.cachedMeta = this.text(this.eventEnd + 2, this.metaEnd);
    return this.cachedMeta;
  }

  /** The data section, a view of `source`. */
  get data(): Buffer {
    if (this.cachedData === undefined) {
      if (this.bare) this.cachedData = EMPTY_BUFFER;
      else if (this.parts !== null) this.cachedData = this.raw.subarray(this.metaEnd + 2);
      else this.cachedData = this.source.subarray(this.start + this.metaEnd + 2, this.start + this.size);
    }
    return this.cachedData;
  }

  /** Offset in `raw` where the event starts, just past the sid and its separator. */
  get eventOffset(): number {
    return this.bare ? FRAME_PREFIX_BYTES : this.sidEnd + 2;
  }

  /**
   * The buffer holding the frame's body, everything after its sid (event, meta, data): what a re-headed
   * frame keeps untouched (spec §5). `source` itself, or for a frame in parts its joined `raw`.
   */
  get bodySource(): Buffer {
    return this.parts === null ? this.source : this.raw;
  }

  /** Where the body starts in bodySource. */
  get bodyStart(): number {
    return this.parts === null ? this.start + this.eventOffset : this.eventOffset;
  }

  /** Where the body ends in bodySource. */
  get bodyEnd(): number {
    return this.parts === null ? this.start + this.size : this.size;
  }

  /** One meta value; the last occurrence of a repeated key wins. */
  meta(key: string): string | undefined {
    if (this.metaMap !== undefined) return this.metaMap.get(key);
    return metaGet(this.metaString, key);
  }

  /** All metas as a map, parsed on first use. */
  metas(): Map<string, string> {
    if (this.metaMap === undefined) this.metaMap = parseMeta(this.metaString);
    return this.metaMap;
  }

  /** Decodes frame offsets [from, to) as UTF-8. */
  private text(from: number, to: number): string {
    return to > from ? this.source.toString('utf8', this.start + from, this.start + to) : '';
  }
}

/** A frame to encode. */
export interface FrameFields {
  flag: number;
  sid?: string;
  event?: string;
  meta?: string;
  data?: Buffer | Uint8Array | string;
}
