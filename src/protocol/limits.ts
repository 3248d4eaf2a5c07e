/**
 * Frame size limits (spec §1). Every limit is checked by the decoder at the earliest byte that can break it.
 * The defaults are the broker's; configuration may only lower them (the reference clients never exceed them).
 */
export interface FrameLimits {
  /** Longest sid in bytes. */
  maxSid: number;
  /** Longest event in bytes. */
  maxEvent: number;
  /** Longest meta string in bytes. */
  maxMeta: number;
  /** Largest data section in bytes. */
  maxData: number;
  /** Largest whole frame in bytes, its 4-byte length prefix included. */
  maxFrame: number;
}

export const MiB = 1024 * 1024;

export const DEFAULT_FRAME_LIMITS: Readonly<FrameLimits> = Object.freeze({
  maxSid: 64,
  maxEvent: 512,
  maxMeta: 4096,
  maxData: 16 * MiB,
  maxFrame: 17 * MiB,
});

/** UDP carries one frame per datagram (spec §2); the default keeps datagrams below common path MTU limits × 2. */
export const DEFAULT_UDP_MAX_DATAGRAM = 2048;

/** Bytes of a frame before its sid: int32 length + int32 flag. */
export const FRAME_PREFIX_BYTES = 8;

/** A frame with a message carries three `00 0A` separators. */
export const SEPARATOR_BYTES = 2;
export const MIN_MESSAGE_FRAME_BYTES = FRAME_PREFIX_BYTES + 3 * SEPARATOR_BYTES;

/** Returns the problems with a set of limits (empty when valid); `ceiling` is what they may not exceed. */
export function checkFrameLimits(limits: FrameLimits, ceiling: FrameLimits = DEFAULT_FRAME_LIMITS): string[] {
  const problems: string[] = [];
  for (const key of Object.keys(ceiling) as (keyof FrameLimits)[]) {
    const value = limits[key];
    if (!Number.isInteger(value) || value < 1) problems.push(`${key} must be a positive integer (got ${value})`);
    else if (value > ceiling[key]) problems.push(`${key} may not exceed ${ceiling[key]} (got ${value})`);
  }
  if (limits.maxFrame < MIN_MESSAGE_FRAME_BYTES) problems.push(`maxFrame must be at least ${MIN_MESSAGE_FRAME_BYTES}`);
  return problems;
}
