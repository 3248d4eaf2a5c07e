/**
 * Local event matching (spec §4.2), the same rules as the broker's index but written for a client's handful
 * of subscriptions: events are `.`-separated tokens, `*` matches one token, `>` one or more trailing tokens.
 * Matching walks the event in place (no split, no allocation).
 */

/** Why a pattern is invalid, or null. */
export function patternProblem(pattern: string): string | null {
  if (pattern.length === 0) return 'the pattern is empty';
  if (pattern.charCodeAt(0) === 36 /* $ */) return "patterns may not start with '$' (reserved for the broker's events)";
  const tokens = pattern.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i]!;
    if (token.length === 0) return `empty token at position ${i + 1}`;
    if (token === '>' && i !== tokens.length - 1) return "'>' may only be the last token";
    if (token !== '*' && token !== '>' && (token.includes('*') || token.includes('>'))) {
      return `wildcards must be whole tokens ('${token}')`;
    }
    if (/[\s&=]/.test(token)) return `token '${token}' holds a space, '&' or '='`;
  }
  return null;
}

/** True when the pattern has no wildcard token. */
export function isExactPattern(pattern: string): boolean {
  const tokens = pattern.split('.');
  return !tokens.includes('*') && !tokens.includes('>');
}

/** Does `event` match the pattern's tokens? */
export function matchTokens(tokens: readonly string[], event: string): boolean {
  const length = event.length;
  let pos = 0;
  const n = tokens.length;
  for (let i = 0; i < n; i++) {
    if (pos > length) return false; // the event has no token left
    const token = tokens[i]!;
    if (token === '>') return true; // at least one token is left (pos <= length)
    let end = event.indexOf('.', pos);
    if (end === -1) end = length;
    if (token !== '*' && (end - pos !== token.length || !event.startsWith(token, pos))) return false;
    pos = end + 1;
  }
  return pos === length + 1;
}

/** Convenience form for one-off checks (and tests). */
export function matchPattern(pattern: string, event: string): boolean {
  return matchTokens(pattern.split('.'), event);
}
