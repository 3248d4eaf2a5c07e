import { parseMeta, metaGet } from './meta.js';

export const EMPTY_BUFFER: Buffer = Buffer.alloc(0);

/**
 * One decoded frame (spec §1). Strings are decoded once; `data` and `raw` are views into the received bytes,
 * never copies, so a frame forwarded unchanged is written as `raw`.
 */
export class Frame {
  private metaMap: Map<string, string> | undefined;

  constructor(
    readonly flag: number,
    readonly sid: string,
    readonly event: string,
    /** The meta string exactly as received (spec §1: forwarded verbatim). */
    readonly metaString: string,
    readonly data: Buffer,
    /** The frame's whole bytes (length prefix included), or null for a frame built in memory. */
    readonly raw: Buffer | null,
    /** Offset in `raw` where the event starts, i.e. just past the sid and its separator. */
    readonly eventOffset: number,
  ) {}

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

  /** Whole-frame size on the wire. */
  get size(): number {
    return this.raw !== null ? this.raw.length : -1;
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
