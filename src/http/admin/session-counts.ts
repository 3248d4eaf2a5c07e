/**
 * Open sessions by transport, kept up to date as sessions open and end (a SessionObserver), so the admin
 * page's sampler reads them without visiting every session.
 */
import type { SessionObserver } from '../../broker/broker.js';
import type { Session } from '../../broker/session.js';

export class SessionCounts implements SessionObserver {
  private readonly byTransport = new Map<string, number>();

  sessionOpened(session: Session): void {
    this.byTransport.set(session.transport, (this.byTransport.get(session.transport) ?? 0) + 1);
  }

  sessionClosed(session: Session, wasOpen: boolean): void {
    if (!wasOpen) return;
    const n = (this.byTransport.get(session.transport) ?? 0) - 1;
    this.byTransport.set(session.transport, Math.max(0, n));
  }

  /** Open sessions by transport name (transports seen since start; 0 once their sessions have gone). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.byTransport);
  }
}
