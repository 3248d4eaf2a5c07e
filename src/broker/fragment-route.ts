/**
 * The route of a fragmented frame (spec §5). Reference clients put the message's metas (`@` included) on
 * fragment 1 only, so the targets chosen for fragment 1 are kept by the sender's sid until fragment `Total`
 * has passed, the sender leaves, or the request timeout expires.
 */
import type { Session } from './session.js';
import type { Stream } from './streams.js';
import type { Expirable } from './timer-wheel.js';

export class FragmentRoute implements Expirable {
  deadline = 0;
  wheelSlot = -1;
  wheelPrev: Expirable | null = null;
  wheelNext: Expirable | null = null;

  constructor(
    readonly owner: Session,
    /** The sender's sid, key in `owner.fragments`. */
    readonly sid: string,
    readonly targets: readonly Session[],
    /** The sid the fragments carry on the targets' connections. */
    readonly outSid: string,
    /** The stream a fragmented Request/Subscribe opened, null for a Message. */
    readonly stream: Stream | null,
    readonly total: number,
  ) {}

  onExpire(): void {
    if (this.owner.fragments.get(this.sid) === this) this.owner.fragments.delete(this.sid);
  }
}
