/**
 * Client URLs: `sd:tcp://host:port`, `sd:tcps://`, `sd:udp://`, `sd:ws://host:port/path`, `sd:wss://`, with or
 * without the `sd:` prefix. The query (`?@=svc&token=abc`) is kept verbatim: it travels in the Connect as
 * part of the url (spec §3), never decoded.
 */
import { SocketdError } from './errors.js';

export type ClientTransport = 'tcp' | 'tcps' | 'udp' | 'ws' | 'wss';

export interface ClientUrl {
  transport: ClientTransport;
  host: string;
  port: number;
  /** Path and query as written (`/path?x=y`), used to dial ws. */
  pathAndQuery: string;
  /** The url without `sd:`: the Connect's event and data. */
  connectUrl: string;
}

const DEFAULT_PORTS: Record<ClientTransport, number> = { tcp: 8602, tcps: 8602, udp: 8602, ws: 80, wss: 443 };

const URL_PATTERN = /^(tcp|tcps|udp|ws|wss):\/\/(\[[^\]]+\]|[^/?#:]*)(?::(\d+))?([^?#]*)(\?[^#]*)?(#.*)?$/i;

/**
 * Parses a client URL; `name` adds `@=name` to the query (the session's name, spec §4.1).
 * Throws SocketdError `invalid_argument`.
 */
export function parseClientUrl(url: string, name?: string): ClientUrl {
  let rest = url.startsWith('sd:') ? url.slice(3) : url;
  const m = URL_PATTERN.exec(rest);
  if (m === null) {
    throw new SocketdError('invalid_argument', `Unsupported url '${url}': expected sd:tcp|tcps|udp|ws|wss://host:port[/path][?query]`);
  }
  const transport = m[1]!.toLowerCase() as ClientTransport;
  let host = m[2]!;
  if (host.length === 0) throw new SocketdError('invalid_argument', `Url '${url}' has no host`);
  if (host.startsWith('[')) host = host.slice(1, -1);
  const port = m[3] === undefined ? DEFAULT_PORTS[transport] : Number(m[3]);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new SocketdError('invalid_argument', `Url '${url}' has an invalid port`);
  if (name !== undefined && name.length > 0) {
    const hash = m[6] ?? '';
    const query = m[5] === undefined || m[5] === '?' ? `?@=${name}` : `${m[5]}&@=${name}`;
    rest = rest.slice(0, rest.length - hash.length - (m[5]?.length ?? 0)) + query + hash;
  }
  const q = rest.indexOf('?');
  const pathStart = rest.indexOf('/', rest.indexOf('//') + 2);
  let pathAndQuery = pathStart === -1 || (q !== -1 && pathStart > q) ? '/' + (q === -1 ? '' : rest.slice(q)) : rest.slice(pathStart);
  const hashAt = pathAndQuery.indexOf('#');
  if (hashAt !== -1) pathAndQuery = pathAndQuery.slice(0, hashAt);
  return { transport, host, port, pathAndQuery, connectUrl: rest };
}
