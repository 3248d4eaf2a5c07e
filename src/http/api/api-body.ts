/**
 * Reading and checking the HTTP API's request bodies (docs/http-api.md): bounded at the earliest byte (the
 * Content-Length, then every chunk), JSON only, and each field checked before anything reaches the broker.
 */
import type http from 'node:http';

/** A caller's mistake: answered with `status` and a JSON body `{error: code, message}`. */
export class ApiError extends Error {
  constructor(readonly status: number, readonly code: string, message: string, readonly extra: Record<string, unknown> = {}) {
    super(message);
  }
}

/**
 * The body, at most `limit` bytes. A larger body is refused by its Content-Length before it is read, or as
 * soon as the bytes read pass the limit (ApiError 413); the connection is then closed by the caller.
 */
export function readBody(req: http.IncomingMessage, limit: number): Promise<Buffer> {
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > limit) {
    return Promise.reject(new ApiError(413, 'too_large', `The body of ${declared} bytes is larger than the limit of ${limit}`));
  }
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    req.on('data', (chunk: Buffer) => {
      if (done) return;
      size += chunk.length;
      if (size > limit) {
        done = true;
        req.pause();
        reject(new ApiError(413, 'too_large', `The body is larger than the limit of ${limit} bytes`));
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => {
      if (done) return;
      done = true;
      resolve(Buffer.concat(chunks, size));
    });
    req.on('error', (error) => {
      if (done) return;
      done = true;
      reject(new ApiError(400, 'bad_body', `The body could not be read: ${error.message}`));
    });
  });
}

/** The body as a JSON object. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new ApiError(400, 'bad_json', `The body is not JSON: ${(error as Error).message}`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new ApiError(400, 'bad_json', 'The body must be a JSON object');
  }
  return value as Record<string, unknown>;
}

export function optionalString(body: Record<string, unknown>, key: string): string | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new ApiError(400, 'bad_request', `'${key}' must be a string`);
  return value;
}

/**
 * Metas from a JSON object of scalars, as a meta string (spec §1: `k=v&k=v`, never encoded): keys may not
 * hold `&` or `=`, values not `&`; `@` is set with "name", never here.
 */
export function metaFrom(value: unknown, reserved: readonly string[]): string {
  if (value === undefined || value === null) return '';
  if (typeof value !== 'object' || Array.isArray(value)) throw new ApiError(400, 'bad_meta', "'meta' must be an object of strings");
  let out = '';
  for (const [key, raw] of Object.entries(value as Record<string, unknown>)) {
    if (typeof raw !== 'string' && typeof raw !== 'number' && typeof raw !== 'boolean') {
      throw new ApiError(400, 'bad_meta', `meta '${key}' must be a string, number or boolean`);
    }
    const text = String(raw);
    if (key.length === 0 || /[&=\s]/.test(key)) throw new ApiError(400, 'bad_meta', `meta key '${key}' may not be empty or hold '&', '=' or spaces`);
    if (text.includes('&')) throw new ApiError(400, 'bad_meta', `meta '${key}' may not hold '&' (metas are not encoded, spec §1)`);
    if (reserved.includes(key)) throw new ApiError(400, 'bad_meta', `meta '${key}' is set by the API (use the body's own field)`);
    out += `${out.length > 0 ? '&' : ''}${key}=${text}`;
  }
  return out;
}

/** The data of a body: `data` (a string as UTF-8, any other JSON value as its JSON text) or `dataBase64`. */
export function dataFrom(body: Record<string, unknown>, maxData: number): Buffer {
  const { data, dataBase64 } = body;
  if (data !== undefined && dataBase64 !== undefined) throw new ApiError(400, 'bad_request', "Give 'data' or 'dataBase64', not both");
  let bytes: Buffer;
  if (dataBase64 !== undefined) {
    if (typeof dataBase64 !== 'string' || !/^[A-Za-z0-9+/_-]*={0,2}$/.test(dataBase64)) {
      throw new ApiError(400, 'bad_request', "'dataBase64' must be a base64 string");
    }
    bytes = Buffer.from(dataBase64, 'base64');
  } else if (data === undefined || data === null) {
    bytes = Buffer.alloc(0);
  } else {
    bytes = Buffer.from(typeof data === 'string' ? data : JSON.stringify(data), 'utf8');
  }
  if (bytes.length > maxData) throw new ApiError(413, 'too_large', `The data of ${bytes.length} bytes is larger than limits.maxData (${maxData})`);
  return bytes;
}

/** A positive integer field, or undefined. */
export function optionalPositiveInt(body: Record<string, unknown>, key: string): number | undefined {
  const value = body[key];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value <= 0) throw new ApiError(400, 'bad_request', `'${key}' must be a positive integer`);
  return value;
}
