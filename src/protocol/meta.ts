/**
 * Meta strings (spec §1): `k=v&k=v`, never URL-encoded. Parsed by splitting on `&`, then on the first `=`.
 * A forwarded frame keeps its meta string verbatim, so most code reads single keys with {@link metaGet}
 * instead of building a map.
 */

/** Parses a meta string into a map; a later duplicate key wins, as in the reference client. */
export function parseMeta(meta: string): Map<string, string> {
  const map = new Map<string, string>();
  if (meta.length === 0) return map;
  let start = 0;
  while (start <= meta.length) {
    let end = meta.indexOf('&', start);
    if (end === -1) end = meta.length;
    if (end > start) {
      const eq = meta.indexOf('=', start);
      if (eq === -1 || eq > end) map.set(meta.slice(start, end), '');
      else map.set(meta.slice(start, eq), meta.slice(eq + 1, end));
    }
    start = end + 1;
  }
  return map;
}

/** Formats metas as `k=v&k=v` in iteration order, without encoding. */
export function formatMeta(entries: Iterable<readonly [string, string]> | Record<string, string>): string {
  const list = Symbol.iterator in entries
    ? (entries as Iterable<readonly [string, string]>)
    : Object.entries(entries as Record<string, string>);
  let out = '';
  for (const [k, v] of list) {
    if (out.length > 0) out += '&';
    out += k;
    out += '=';
    out += v;
  }
  return out;
}

/**
 * Reads one key's value without allocating a map: the last occurrence wins, as with {@link parseMeta}.
 * Returns undefined when the key is absent.
 */
export function metaGet(meta: string, key: string): string | undefined {
  if (meta.length === 0) return undefined;
  let found: string | undefined;
  let start = 0;
  const keyLen = key.length;
  while (start < meta.length) {
    let end = meta.indexOf('&', start);
    if (end === -1) end = meta.length;
    if (meta.startsWith(key, start)) {
      const after = start + keyLen;
      if (after === end) found = '';
      else if (meta.charCodeAt(after) === 61 /* = */) found = meta.slice(after + 1, end);
    }
    start = end + 1;
  }
  return found;
}

/** Appends `key=value` to a meta string (used for the Alarm `code`, spec §6). */
export function metaAppend(meta: string, key: string, value: string): string {
  return meta.length === 0 ? `${key}=${value}` : `${meta}&${key}=${value}`;
}
