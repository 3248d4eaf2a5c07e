/**
 * One timer per session whose identity expires (a JWT's `exp`, a connect hook's `expiresAt`): no periodic
 * work visits the sessions, and sessions without an expiry hold no timer at all.
 */

/** What the timer ends. */
export interface ExpiringSession {
  tokenExpired(now: number): void;
}

/** setTimeout's longest delay (about 24.8 days); a later expiry is reached in steps of it. */
const MAX_DELAY_MS = 0x7fffffff;

export class ExpiryTimer {
  private timer: NodeJS.Timeout | null = null;
  private at = 0;

  constructor(private readonly session: ExpiringSession, private readonly now: () => number = Date.now) {}

  /** Epoch ms the session ends at, 0 when not armed. */
  get expiresAt(): number {
    return this.at;
  }

  /** (Re)arms the timer for epoch ms `at`. */
  arm(at: number): void {
    this.cancel();
    this.at = at;
    this.schedule();
  }

  cancel(): void {
    if (this.timer !== null) clearTimeout(this.timer);
    this.timer = null;
    this.at = 0;
  }

  private schedule(): void {
    const delay = Math.max(0, this.at - this.now());
    // Unref'd: an expiry alone must not keep the process alive.
    this.timer = setTimeout(() => this.fire(), Math.min(delay, MAX_DELAY_MS));
    this.timer.unref();
  }

  private fire(): void {
    this.timer = null;
    const now = this.now();
    if (now < this.at) {
      this.schedule();
      return;
    }
    this.at = 0;
    this.session.tokenExpired(now);
  }
}
