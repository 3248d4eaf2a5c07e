/**
 * Event names and patterns (spec §4.2), shared by the broker and the client so both apply one grammar:
 * events are tokens separated by single dots; in a pattern `*` matches exactly one token and a last `>`
 * matches one or more trailing tokens. Tokens hold no white space, `&` or `=` (a pattern travels as the
 * value of the `event` meta of `$sub`, which `&` and `=` would cut).
 */

/** Why a pattern is invalid, or null. `maxBytes` is the event limit (spec §1). */
export function patternProblem(pattern: string, maxBytes = 512): string | null {
  if (pattern.length === 0) return 'the pattern is empty';
  if (Buffer.byteLength(pattern) > maxBytes) return `the pattern is longer than ${maxBytes} bytes`;
  if (pattern.charCodeAt(0) === 36 /* $ */) return "patterns may not start with '$' (reserved for the broker's events)";
  const tokens = pattern.split('.');
  for (let i = 0; i < tokens.length; i++) {
    const token = tokens[i];
    if (token.length === 0) return `empty token at position ${i + 1} (patterns are tokens separated by single dots)`;
    if (token === '>') {
      if (i !== tokens.length - 1) return "'>' may only be the last token";
      continue;
    }
    if (token === '*') continue;
    if (token.includes('*') || token.includes('>')) return `'${token}': '*' and '>' must stand alone as a whole token`;
    if (/[\s&=]/.test(token)) return `'${token}': tokens may not contain white space, '&' or '='`;
  }
  return null;
}

/** True when the pattern has no wildcard token (it names exactly one event). */
export function isExactPattern(pattern: string): boolean {
  const tokens = pattern.split('.');
  return !tokens.includes('*') && !tokens.includes('>');
}

/**
 * A concrete event one may publish: no empty token and no wildcard token (`a.*` published would otherwise
 * reach `a.*` subscribers literally). A few native scans; no allocation unless a `*` or `>` is present.
 */
export function isPublishableEvent(event: string): boolean {
  if (event.charCodeAt(0) === 46 || event.charCodeAt(event.length - 1) === 46 || event.includes('..')) return false;
  if (event.includes('*') || event.includes('>')) {
    for (const token of event.split('.')) if (token === '*' || token === '>') return false;
  }
  return true;
}

/** Does `event` match a pattern split into `tokens`? Walks the event in place (no split, no allocation). */
export function matchTokens(tokens: readonly string[], event: string): boolean {
  const length = event.length;
  let pos = 0;
  const n = tokens.length;
  for (let i = 0; i < n; i++) {
    if (pos > length) return false; // the event has no token left
    const token = tokens[i];
    if (token === '>') return i === n - 1; // at least one token is left (pos <= length)
    let end = event.indexOf('.', pos);
    if (end === -1) end = length;
    if (token !== '*' && (end - pos !== token.length || !event.startsWith(token, pos))) return false;
    pos = end + 1;
  }
  return pos === length + 1;
}

/** One-off form of {@link matchTokens}. */
export function matchPattern(pattern: string, event: string): boolean {
  return matchTokens(pattern.split('.'), event);
}

/** Does `outer` match every event that the pattern `inner` matches? (access rules, spec §8) */
export function patternCovers(outer: string, inner: string): boolean {
  const o = outer.split('.');
  const n = inner.split('.');
  for (let i = 0; i < o.length; i++) {
    if (o[i] === '>') return i === o.length - 1 && n.length > i;
    if (i >= n.length) return false;
    if (n[i] === '>') return false; // inner goes on to any depth, outer does not
    if (o[i] === '*') continue;
    if (n[i] === '*' || o[i] !== n[i]) return false;
  }
  return o.length === n.length;
}
