/**
 * `@` addressing (spec §4.1):
 *   `name`  one session named `name`, round robin
 *   `name!` one session named `name`, by a stable hash of `X-Hash` (else the sender's IP)
 *   `name*` every session named `name`
 *   `*`     every named session
 */
export const enum AtMode {
  One = 0,
  Hash = 1,
  All = 2,
  Everyone = 3,
}

export interface AtAddress {
  mode: AtMode;
  name: string;
}

/** Parses an `@` value into `out`; returns false for an empty name (`@=`, `@=!`). */
export function parseAt(value: string, out: AtAddress): boolean {
  const last = value.length - 1;
  if (value === '*') {
    out.mode = AtMode.Everyone;
    out.name = '';
    return true;
  }
  const suffix = value.charCodeAt(last);
  if (suffix === 42 /* * */) {
    out.mode = AtMode.All;
    out.name = value.slice(0, last);
  } else if (suffix === 33 /* ! */) {
    out.mode = AtMode.Hash;
    out.name = value.slice(0, last);
  } else {
    out.mode = AtMode.One;
    out.name = value;
  }
  return out.name.length > 0;
}

/** True when a name can be claimed in the handshake: not empty, no addressing suffix, no separators. */
export function isValidSessionName(name: string): boolean {
  if (name.length === 0 || name.length > 256) return false;
  const last = name.charCodeAt(name.length - 1);
  if (last === 42 || last === 33) return false;
  return !/[\s&=,]/.test(name);
}
