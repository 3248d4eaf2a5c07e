/**
 * Sessions by transport, kept up to date as sessions are accepted, open and end (a SessionObserver), so the
 * admin page's sampler and the metrics read them without visiting every session (no periodic work that
 * visits every session: idle sessions cost nothing).
 */
import type { SessionObserver } from './broker.js';
import type { Session } from './session.js';

export class SessionCounts implements SessionObserver {
  /** Sessions past their handshake. */
  private readonly byTransport = new Map<string, number>();
  /** Every session the broker holds: in its handshake or open (what `socketd_connections_open` counts). */
  private readonly connectedByTransport = new Map<string, number>();

  sessionAccepted(session: Session): void {
    this.connectedByTransport.set(session.transport, (this.connectedByTransport.get(session.transport) ?? 0) + 1);
  }

  sessionOpened(session: Session): void {
    this.byTransport.set(session.transport, (this.byTransport.get(session.transport) ?? 0) + 1);
  }

  sessionClosed(session: Session, wasOpen: boolean): void {
    const held = (this.connectedByTransport.get(session.transport) ?? 0) - 1;
    this.connectedByTransport.set(session.transport, Math.max(0, held));
    if (!wasOpen) return;
    const n = (this.byTransport.get(session.transport) ?? 0) - 1;
    this.byTransport.set(session.transport, Math.max(0, n));
  }

  /** Open sessions by transport name (transports seen since start; 0 once their sessions have gone). */
  snapshot(): Record<string, number> {
    return Object.fromEntries(this.byTransport);
  }

  /**
   * Sessions in their handshake or open, by transport name (transports seen since start; 0 once their
   * sessions have gone): the broker's `allSessions()` counted by transport, without visiting it.
   */
  connected(): ReadonlyMap<string, number> {
    return this.connectedByTransport;
  }
}
