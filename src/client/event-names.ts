/**
 * The events of received frames as strings, decoded once per distinct event rather than once per frame.
 * A subscriber mostly receives the same few events over and over; decoding one costs a native call and a
 * new string (whose hash the handler lookup then computes again), comparing its bytes with the last few
 * events seen costs a short loop.
 */
import type { Frame } from '../protocol/frame.js';

/** Distinct events remembered, replaced round robin. */
const SLOTS = 4;
/** Longer events are not remembered (the comparison would cost about what decoding does). */
const MAX_EVENT_BYTES = 64;

export class EventNames {
  private readonly bytes: (Buffer | null)[] = new Array<Buffer | null>(SLOTS).fill(null);
  private readonly names: string[] = new Array<string>(SLOTS).fill('');
  private nextSlot = 0;

  /**
   * The event of a message frame, equal to `frame.event`: one of the remembered events when the frame's event
   * bytes equal its bytes (Frame.adoptEvent compares them where the decoder found the event, without a view
   * or a decode), else decoded and remembered.
   */
  of(frame: Frame): string {
    for (let s = 0; s < SLOTS; s++) {
      const known = this.bytes[s];
      if (known === null) break;
      if (frame.adoptEvent(this.names[s]!, known)) return this.names[s]!;
    }
    const name = frame.event;
    const bytes = frame.eventBytes();
    if (bytes.length <= MAX_EVENT_BYTES) {
      const slot = this.nextSlot;
      this.nextSlot = (slot + 1) % SLOTS;
      // A copy: a view would keep the whole received chunk alive.
      this.bytes[slot] = Buffer.from(bytes);
      this.names[slot] = name;
    }
    return name;
  }
}
