/**
 * Access control (spec §8). The broker asks its AccessPolicy at the handshake; the config-driven policy with
 * users, tokens and permissions comes with issue #7. OPEN_ACCESS admits every client (anonymous access on).
 */
export interface HandshakeRefusal {
  /** Stable code, logged and counted (e.g. `auth_failed`). */
  code: string;
  /** Human-readable reason, sent in the Close frame. */
  text: string;
}

export interface AccessPolicy {
  /** Returns null to admit the client, or why it is refused. */
  checkHandshake(params: ReadonlyMap<string, string>, remoteAddress: string): HandshakeRefusal | null;
}

export const OPEN_ACCESS: AccessPolicy = {
  checkHandshake: () => null,
};
