/** JSON answers of the HTTP API (docs/http-api.md). */
import type http from 'node:http';
import { isUtf8 } from 'node:buffer';
import { parseMeta } from '../../protocol/meta.js';
import type { Frame } from '../../protocol/frame.js';

export interface FrameJson {
  event: string;
  meta: Record<string, string>;
  /** The data as text when it is valid UTF-8, else null and `dataBase64`. */
  data: string | null;
  dataBase64?: string;
}

/** A frame as JSON: event, metas as an object, data as text when it is UTF-8, else base64. */
export function frameJson(frame: Frame): FrameJson {
  const data = frame.data;
  const meta = Object.fromEntries(parseMeta(frame.metaString));
  return isUtf8(data)
    ? { event: frame.event, meta, data: data.toString('utf8') }
    : { event: frame.event, meta, data: null, dataBase64: data.toString('base64') };
}

export function sendJson(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}
