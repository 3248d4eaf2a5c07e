import { parseMeta, metaGet } from './meta.js';
import { FRAME_PREFIX_BYTES } from './limits.js';

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

/**
 * One decoded frame (spec §1): a view of the received bytes plus the offsets of its three separators.
 * sid, event, meta and data are decoded on first use and cached, so a frame that is forwarded unchanged
 * (spec §5, principle 7) costs no string decoding and no copy: it is written out as `raw`.
 */
export class Frame {
  private cachedSid: string | undefined = undefined;
  private cachedEvent: string | undefined = undefined;
  private cachedMeta: string | undefined = undefined;
  private cachedData: Buffer | undefined = undefined;
  private metaMap: Map<string, string> | undefined = undefined;

  /**
   * @param raw the frame's whole bytes, length prefix included
   * @param sidEnd offset of the separator after the sid (for an 8-byte frame: 8, and so are the others)
   * @param eventEnd offset of the separator after the event
   * @param metaEnd offset of the separator after the meta
   */
  constructor(
    readonly flag: number,
    readonly raw: Buffer,
    private readonly sidEnd: number,
    private readonly eventEnd: number,
    private readonly metaEnd: number,
  ) {}

  /** True for the 8-byte frames that carry no message (Ping, Pong). */
  get bare(): boolean {
    return this.raw.length === FRAME_PREFIX_BYTES;
  }

  get sid(): string {
    if (this.cachedSid === undefined) this.cachedSid = this.text(FRAME_PREFIX_BYTES, this.sidEnd);
    return this.cachedSid;
  }

  get event(): string {
    if (this.cachedEvent === undefined) this.cachedEvent = this.text(this.sidEnd + 2, this.eventEnd);
    return this.cachedEvent;
  }

  /** The meta string exactly as received (spec §1: forwarded verbatim). */
  get metaString(): string {
    if (this.cachedMeta === undefined) this.cachedMeta = this.text(this.eventEnd + 2, this.metaEnd);
    return this.cachedMeta;
  }

  /** The data section, a view of `raw`. */
  get data(): Buffer {
    if (this.cachedData === undefined) {
      this.cachedData = this.bare ? EMPTY_BUFFER : this.raw.subarray(this.metaEnd + 2);
    }
    return this.cachedData;
  }

  /** Offset in `raw` where the event starts, just past the sid and its separator. */
  get eventOffset(): number {
    return this.bare ? FRAME_PREFIX_BYTES : this.sidEnd + 2;
  }

  /** Whole-frame size on the wire. */
  get size(): number {
    return this.raw.length;
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

  private text(from: number, to: number): string {
    return to > from ? this.raw.toString('utf8', from, to) : '';
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
