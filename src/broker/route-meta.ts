/**
 * The metas the router reads from every routable frame, extracted in one pass over the meta string with no
 * allocation but the values themselves. The reusable {@link RouteMeta} instance belongs to the router.
 */
export class RouteMeta {
  /** The `@` target (spec §4.1), or undefined for event routing (spec §4.2). */
  at: string | undefined = undefined;
  /** `Data-Fragment-Idx` (1-based), 0 when absent (spec §5). */
  fragmentIdx = 0;
  /** `Data-Fragment-Total`, 0 when absent. */
  fragmentTotal = 0;
  /** `timeout` in ms asked by the requester, 0 when absent or invalid. */
  timeoutMs = 0;
  /** `X-Hash` for `name!` routing. */
  hashKey: string | undefined = undefined;

  reset(): void {
    this.at = undefined;
    this.fragmentIdx = 0;
    this.fragmentTotal = 0;
    this.timeoutMs = 0;
    this.hashKey = undefined;
  }
}

export const META_FRAGMENT_IDX = 'Data-Fragment-Idx';
export const META_FRAGMENT_TOTAL = 'Data-Fragment-Total';

function positiveInt(text: string): number {
  const n = Number(text);
  return Number.isInteger(n) && n > 0 ? n : 0;
}

/** Fills `out` from `meta`; later duplicates win, as in parseMeta. */
export function readRouteMeta(meta: string, out: RouteMeta): void {
  out.reset();
  const length = meta.length;
  let start = 0;
  while (start < length) {
    let end = meta.indexOf('&', start);
    if (end === -1) end = length;
    const eq = meta.indexOf('=', start);
    if (eq !== -1 && eq < end) {
      const keyLen = eq - start;
      const first = meta.charCodeAt(start);
      if (keyLen === 1 && first === 64 /* @ */) {
        out.at = meta.slice(eq + 1, end);
      } else if (first === 68 /* D */ && keyLen >= 17 && meta.startsWith('Data-Fragment-', start)) {
        if (keyLen === 17 && meta.startsWith(META_FRAGMENT_IDX, start)) out.fragmentIdx = positiveInt(meta.slice(eq + 1, end));
        else if (keyLen === 19 && meta.startsWith(META_FRAGMENT_TOTAL, start)) {
          out.fragmentTotal = positiveInt(meta.slice(eq + 1, end));
        }
      } else if (keyLen === 7 && first === 116 /* t */ && meta.startsWith('timeout', start)) {
        out.timeoutMs = positiveInt(meta.slice(eq + 1, end));
      } else if (keyLen === 6 && first === 88 /* X */ && meta.startsWith('X-Hash', start)) {
        out.hashKey = meta.slice(eq + 1, end);
      }
    }
    start = end + 1;
  }
}
