/**
 * Handshake parameters (spec §3): the Connect's URL query, not decoded, overlaid by the Connect metas.
 * The URL comes without the `sd:` prefix, e.g. `tcp://host:8602/path?@=orders&token=abc`.
 */
import { parseMeta } from './meta.js';

/** The query part of a Socket.D URL as a raw `k=v&k=v` string ('' when there is none). */
export function urlQuery(url: string): string {
  // The fragment starts at the first '#', and a '?' after it is part of the fragment (RFC 3986 §3.5).
  const hash = url.indexOf('#');
  const end = hash === -1 ? url.length : hash;
  const q = url.indexOf('?');
  if (q === -1 || q > end) return '';
  return url.slice(q + 1, end);
}

/** Query params overlaid by metas; the values are kept as sent (never URL-decoded, as the reference does). */
export function handshakeParams(url: string, metaString: string): Map<string, string> {
  const params = parseMeta(urlQuery(url));
  if (metaString.length > 0) for (const [k, v] of parseMeta(metaString)) params.set(k, v);
  return params;
}
