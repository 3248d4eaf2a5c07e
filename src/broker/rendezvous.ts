/**
 * Rendezvous (highest random weight) hashing for `name!` (spec §4.1): each key goes to the member with the
 * highest hash(key, member). When a member joins or leaves, only the keys it wins or held move, which is
 * the "as few keys as possible" the spec asks for; no ring to rebuild on membership changes.
 */

/** 32-bit FNV-1a over the UTF-16 code units of `text`, continuing from `seed`. */
function fnv1a(text: string, seed: number): number {
  let h = seed;
  for (let i = 0; i < text.length; i++) {
    h ^= text.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** murmur3's finalizer: spreads FNV's weak low bits so scores compare fairly. */
function mix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

const FNV_OFFSET = 0x811c9dc5;

export function rendezvousScore(key: string, memberId: string): number {
  return mix(fnv1a(memberId, fnv1a(key, FNV_OFFSET) ^ 0x9e3779b9));
}

/** Index of the winning member for `key`, skipping `exclude`; -1 when none is eligible. */
export function rendezvousPick<T extends { readonly id: string }>(key: string, members: readonly T[], exclude: T | null): number {
  let best = -1;
  let bestScore = -1;
  for (let i = 0; i < members.length; i++) {
    const m = members[i];
    if (m === exclude) continue;
    const score = rendezvousScore(key, m.id);
    if (score > bestScore || (score === bestScore && best !== -1 && m.id < members[best].id)) {
      best = i;
      bestScore = score;
    }
  }
  return best;
}
