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

/**
 * The path of a Socket.D URL without its leading and trailing `/` ('' for none or `/`), not decoded:
 * `tcp://host:8602/tenant-a?@=svc` -> `tenant-a`. It names the session's namespace (docs/namespaces.md).
 */
export function urlPath(url: string): string {
  const scheme = url.indexOf('://');
  let start = scheme === -1 ? 0 : scheme + 3;
  let end = url.length;
  for (let i = start; i < end; i++) {
    const c = url.charCodeAt(i);
    if (c === 63 /* ? */ || c === 35 /* # */) {
      end = i;
      break;
    }
  }
  // The authority (host:port) ends at the first '/'; without one there is no path.
  const slash = url.indexOf('/', start);
  if (slash === -1 || slash >= end) return '';
  start = slash;
  while (start < end && url.charCodeAt(start) === 47 /* / */) start++;
  while (end > start && url.charCodeAt(end - 1) === 47) end--;
  return url.slice(start, end);
}
