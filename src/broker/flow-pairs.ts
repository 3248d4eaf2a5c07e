/**
 * Who is paused on whom (spec §7, docs/protocol.md 6.3): a sender whose frames filled a congested target's
 * queue is paused until that target drains, and the target keeps its feeders to release them then. Both ends
 * of a pair are recorded, so whichever session ends first releases the other. The sets are made on a
 * session's first congestion: most sessions never need them (memory per idle session). Whether a paused
 * session actually stops reading is its own affair (flowChanged).
 */
export interface FlowParty {
  /** Targets this party is paused on; null until its first pause. Written only here. */
  pausedOn: Set<FlowParty> | null;
  /** Parties this one paused; null until its first congestion. Written only here. */
  feeders: Set<FlowParty> | null;
  /** Its `pausedOn` set changed: the party decides again whether it reads. */
  flowChanged(): void;
}

/** `feeder` fed the congested `target`: true when this pauses it anew (the caller tells it with Pressure). */
export function pauseFeeder(feeder: FlowParty, target: FlowParty): boolean {
  const feeders = (target.feeders ??= new Set());
  if (feeders.has(feeder)) return false;
  feeders.add(feeder);
  const pausedOn = (feeder.pausedOn ??= new Set());
  if (pausedOn.has(target)) return false;
  pausedOn.add(target);
  feeder.flowChanged();
  return true;
}

/** `target` drained: the feeders it paused are no longer paused on it. */
export function releaseFeeders(target: FlowParty): void {
  const feeders = target.feeders;
  if (feeders === null || feeders.size === 0) return;
  for (const feeder of feeders) {
    if (feeder.pausedOn !== null && feeder.pausedOn.delete(target)) feeder.flowChanged();
  }
  feeders.clear();
}

/** `party` ends: its feeders are released, and it leaves the feeders of the targets it was paused on. */
export function leaveFlow(party: FlowParty): void {
  releaseFeeders(party);
  if (party.pausedOn !== null) {
    for (const target of party.pausedOn) target.feeders?.delete(party);
    party.pausedOn.clear();
  }
}
