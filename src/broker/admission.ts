/**
 * A Connect's admission, apart from the session's state changes (spec §3, docs/security.md "Per-user
 * identity"): the name an admitted session gets, and the frames a client sends while an asynchronous admission
 * (a JWT checked against a JWKS, the connect hook) is pending, kept in order and bounded. The session
 * (session.ts) applies the outcome: its state, the Connack, the registry.
 */
import type { Frame } from '../protocol/frame.js';
import type { HandshakeRefusal, Permissions } from './access.js';
import { isValidSessionName } from './at-address.js';
import { TokenPermissions } from './auth/identity.js';

/**
 * The name an admitted session gets, or why it is refused: the one the connect hook assigned (it needs no
 * claim rule), else the one the client asked for when the identity may claim it ('' for none).
 */
export function grantedName(requested: string, admitted: Permissions): string | HandshakeRefusal {
  const assigned = admitted instanceof TokenPermissions ? admitted.assignedName : '';
  if (assigned.length > 0) {
    return isValidSessionName(assigned) ? assigned : { code: 'invalid_name', text: `The name '${assigned}' the connect hook assigned is not valid` };
  }
  if (requested.length > 0 && !admitted.canClaim(requested)) {
    return { code: 'name_forbidden', text: `User '${admitted.user}' may not claim the name '${requested}'` };
  }
  return requested;
}

/** A Connect waiting for its admission, with the frames that came after it. */
export class PendingAdmission {
  private readonly held: Frame[] = [];
  private heldBytes = 0;

  constructor(
    /** The Connect being admitted. */
    readonly connect: Frame,
    /** The name it asked for. */
    readonly requested: string,
  ) {}

  /** Frames held so far, in arrival order. */
  get frames(): readonly Frame[] {
    return this.held;
  }

  /** Keeps `frame`; false when that would pass `maxFrames` or `maxBytes` (the session is then closed). */
  hold(frame: Frame, maxFrames: number, maxBytes: number): boolean {
    this.heldBytes += frame.size;
    if (this.held.length >= maxFrames || this.heldBytes > maxBytes) return false;
    this.held.push(frame);
    return true;
  }
}
