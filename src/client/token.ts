/**
 * The client's token (docs/client.md, "Tokens"; docs/security.md): a fixed string, or a function the client
 * calls for a fresh one on connect, on every reconnect and shortly before the current one expires. Before
 * expiry the fresh token goes to the broker as a `$auth` control Request (docs/protocol.md), so the session
 * stays open. The expiry is read from the token when it is a JWT (`exp`, not verified: only the broker
 * verifies) or from the broker's `$auth` answer (meta `exp`).
 */

/** Why the client asks for a token. */
export interface TokenContext {
  reason: 'connect' | 'reconnect' | 'refresh';
}

export type TokenProvider = (context: TokenContext) => string | Promise<string>;

/** A JWT's `exp` in epoch ms, 0 when the token is no JWT or has none. */
export function tokenExpiry(token: string): number {
  const parts = token.split('.');
  if (parts.length !== 3 || !token.startsWith('eyJ')) return 0;
  try {
    const b64 = parts[1].replace(/-/g, '+').replace(/_/g, '/');
    const json = Buffer.from(b64 + '='.repeat((4 - (b64.length % 4)) % 4), 'base64').toString('utf8');
    const exp = (JSON.parse(json) as { exp?: unknown }).exp;
    return typeof exp === 'number' && Number.isFinite(exp) ? exp * 1000 : 0;
  } catch {
    return 0;
  }
}

/** What the keeper needs from the client. */
export interface TokenOwner {
  /** True while a handshaken connection is up. */
  isConnected(): boolean;
  /** Sends `$auth` with the token; resolves with the broker's `exp` (epoch s, 0 none) or rejects. */
  sendAuth(token: string): Promise<number>;
  /** Reports a failed refresh (the session then ends at expiry and the client reconnects). */
  refreshFailed(error: unknown): void;
}

export class TokenKeeper {
  private timer: ReturnType<typeof setTimeout> | null = null;

  constructor(
    private readonly source: string | TokenProvider | undefined,
    /** Refresh this long before expiry (at most half the token's remaining life). */
    private readonly marginMs: number,
    private readonly owner: TokenOwner,
  ) {}

  /** True when the token comes from a function (fresh per connection, refreshed before expiry). */
  get dynamic(): boolean {
    return typeof this.source === 'function';
  }

  /** The token for a new connection; undefined when the client has none. */
  async forConnection(reconnect: boolean): Promise<string | undefined> {
    if (typeof this.source !== 'function') return this.source;
    return checked(await this.source({ reason: reconnect ? 'reconnect' : 'connect' }));
  }

  /** The session was admitted (or refreshed) with `token`: schedules the next refresh when it expires. */
  admitted(token: string | undefined, expiresAt = 0): void {
    this.cancel();
    if (typeof this.source !== 'function' || token === undefined) return;
    const at = expiresAt > 0 ? expiresAt : tokenExpiry(token);
    if (at === 0) return;
    const left = at - Date.now();
    const delay = Math.max(0, left - Math.min(this.marginMs, left / 2));
    this.timer = setTimeout(() => void this.refresh(), delay);
    (this.timer as { unref?: () => void }).unref?.();
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
  }

  private async refresh(): Promise<void> {
    this.timer = null;
    // Not connected: the reconnect asks for a fresh token anyway.
    if (!this.owner.isConnected() || typeof this.source !== 'function') return;
    try {
      const token = checked(await this.source({ reason: 'refresh' }));
      const exp = await this.owner.sendAuth(token);
      this.admitted(token, exp * 1000);
    } catch (error) {
      this.owner.refreshFailed(error);
    }
  }
}

function checked(token: unknown): string {
  if (typeof token !== 'string' || token.length === 0 || token.includes('&')) {
    throw new TypeError('The token function must return a non-empty string without \'&\'');
  }
  return token;
}
