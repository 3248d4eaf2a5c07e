/**
 * A sender's last published event that passed the event router's checks (not a control event, publishable,
 * permitted to this sender): the sender's next frame with the same event bytes skips the UTF-8 decoding and
 * the checks (spec §4.2; a publisher mostly repeats its event). The checks depend only on the event and the
 * sender's permissions, which are fixed at the handshake, so the entry stays valid for the session's life.
 */
export class PublishedEvent {
  /** @param bytes the UTF-8 form of `event`, a copy (not a view of a received chunk, which it would pin) */
  constructor(
    readonly event: string,
    readonly bytes: Buffer,
  ) {}
}

/** Longer events are not remembered: comparing and copying them costs about what decoding does. */
export const MAX_REMEMBERED_EVENT_BYTES = 256;
