/**
 * Frame flags (spec §1). The numeric values are the reference implementation's; any other value on the wire
 * is a protocol error.
 */
export const Flag = {
  Connect: 10,
  Connack: 11,
  Ping: 20,
  Pong: 21,
  Close: 30,
  Alarm: 31,
  Pressure: 32,
  Message: 40,
  Request: 41,
  Subscribe: 42,
  Reply: 48,
  ReplyEnd: 49,
} as const;

export type FlagName = keyof typeof Flag;
export type FlagValue = (typeof Flag)[FlagName];

const NAMES: Record<number, FlagName> = {};
for (const [name, value] of Object.entries(Flag)) NAMES[value] = name as FlagName;

export function isKnownFlag(flag: number): flag is FlagValue {
  return NAMES[flag] !== undefined;
}

/** Lower-case name for logs and metric labels; `unknown` for anything not in §1. */
export function flagLabel(flag: number): string {
  const name = NAMES[flag];
  return name === undefined ? 'unknown' : name.toLowerCase();
}

/** Message, Request and Subscribe are the frames the broker routes (spec §4). */
export function isRoutable(flag: number): boolean {
  return flag === Flag.Message || flag === Flag.Request || flag === Flag.Subscribe;
}
