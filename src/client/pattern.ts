/**
 * Local event matching (spec §4.2): the client uses the protocol's one grammar, as the broker does.
 */
export { patternProblem, isExactPattern, matchTokens, matchPattern } from '../protocol/event-pattern.js';
