/**
 * Helpers for the event-routing integration tests (spec §4.2): control events as Requests acknowledged by
 * ReplyEnd, presence lists, automatic responders and "nothing arrived" checks.
 */
import assert from 'node:assert/strict';
import { Flag, flagLabel, type Frame } from '../../src/protocol/index.js';
import type { RawClient } from './raw-client.js';
import { closeAll, metaOf } from './integration.js';
import { eventually, startTestBroker, type TestBrokerConfig } from './broker.js';
import type { RunningServer } from '../../src/server.js';

/** Generous: other suites may share the machine's two cores. */
export const WAIT_MS = 5000;

/** Event tests' timeouts: generous, as several suites may share the 2 cores. */
const EVENT_TIMEOUTS = { requestMs: 8000, idleMs: 20_000, handshakeMs: 5000 };

/**
 * Runs `body` against a fresh broker; the clients it pushes into `clients` are closed afterwards and the
 * broker waits for their sessions to end before it closes.
 */
export async function withEventBroker(
  body: (server: RunningServer, clients: RawClient[]) => Promise<void>,
  overrides: TestBrokerConfig = {},
): Promise<void> {
  const server = await startTestBroker({ ...overrides, timeouts: { ...EVENT_TIMEOUTS, ...overrides.timeouts } });
  const clients: RawClient[] = [];
  try {
    await body(server, clients);
  } finally {
    closeAll(...clients);
    await eventually(() => server.broker.sessionCount === 0, WAIT_MS, 'every session gone').catch(() => undefined);
    await server.close();
  }
}

export const isMessage = (f: Frame): boolean => f.flag === Flag.Message;

export interface SubOptions {
  group?: string;
  presence?: boolean;
}

export function subMeta(pattern: string, options: SubOptions = {}): string {
  let meta = `event=${pattern}`;
  if (options.group !== undefined) meta += `&group=${options.group}`;
  if (options.presence === true) meta += '&presence=1';
  return meta;
}

/** Sends a control Request and returns the frame answering it (ReplyEnd or Alarm). */
export async function control(client: RawClient, event: string, meta: string): Promise<Frame> {
  const requestSid = client.send({ flag: Flag.Request, event, meta });
  return client.nextFor(requestSid, WAIT_MS);
}

function describeFrame(f: Frame): string {
  return `${flagLabel(f.flag)}(${f.event}, ${f.metaString}, ${f.data.toString()})`;
}

/** `$sub` as a Request; fails unless acknowledged by ReplyEnd. */
export async function subscribe(client: RawClient, pattern: string, options: SubOptions = {}): Promise<Frame> {
  const answer = await control(client, '$sub', subMeta(pattern, options));
  assert.equal(answer.flag, Flag.ReplyEnd, `$sub ${pattern} acknowledged, got ${describeFrame(answer)}`);
  return answer;
}

/** `$unsub` as a Request; fails unless acknowledged by ReplyEnd. */
export async function unsubscribe(client: RawClient, pattern: string, options: { group?: string } = {}): Promise<Frame> {
  const answer = await control(client, '$unsub', subMeta(pattern, options));
  assert.equal(answer.flag, Flag.ReplyEnd, `$unsub ${pattern} acknowledged, got ${describeFrame(answer)}`);
  return answer;
}

export interface PresenceEntry {
  id: string;
  name: string;
  transport: string;
  since: string;
}

/** `$presence` as a Request: the members of an exact event. */
export async function presenceOf(client: RawClient, event: string): Promise<PresenceEntry[]> {
  const answer = await control(client, '$presence', `event=${event}`);
  assert.equal(answer.flag, Flag.ReplyEnd, `$presence ${event} answered, got ${describeFrame(answer)}`);
  assert.equal(answer.event, '$presence');
  assert.equal(metaOf(answer.metaString, 'event'), event);
  return JSON.parse(answer.data.toString()) as PresenceEntry[];
}

/** Asserts that `frame` is an Alarm with `code` (and optionally answering `sid`). */
export function assertAlarm(frame: Frame, code: number, answering?: string): void {
  assert.equal(frame.flag, Flag.Alarm, `expected Alarm ${code}, got ${describeFrame(frame)}`);
  assert.equal(metaOf(frame.metaString, 'code'), String(code), `Alarm code in '${frame.metaString}' (${frame.data.toString()})`);
  if (answering !== undefined) assert.equal(frame.sid, answering, 'the Alarm answers the frame by its sid');
}

/** Sends a control Request and asserts it is refused with Alarm `code`. */
export async function expectControlAlarm(client: RawClient, event: string, meta: string, code: number): Promise<Frame> {
  const requestSid = client.send({ flag: Flag.Request, event, meta });
  const answer = await client.nextFor(requestSid, WAIT_MS);
  assertAlarm(answer, code, requestSid);
  return answer;
}

/** Messages with this event, e.g. room chat or `$presence.join`. */
export const messagesOf = (event: string) => (f: Frame): boolean => f.flag === Flag.Message && f.event === event;

/** Waits `ms` and asserts that none of `clients` received a frame matching `match`. */
export async function assertNothing(clients: readonly RawClient[], ms: number, match: (f: Frame) => boolean, what: string): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
  clients.forEach((c, i) => {
    const got = c.frames.filter(match);
    assert.equal(got.length, 0, `client #${i} (${c.transport}) got no ${what}: [${got.map(describeFrame).join(', ')}]`);
  });
}

/**
 * Makes `client` answer every matching forwarded frame itself (as a worker would) instead of recording it.
 * `reply` returns the data of the answer to send (a ReplyEnd unless `flag` says Reply), or null to record the
 * frame as usual. Returns a function that stops it.
 */
export function autoReply(
  client: RawClient,
  match: (f: Frame) => boolean,
  reply: (f: Frame) => string | null,
  flag: number = Flag.ReplyEnd,
): () => void {
  const original = client.onFrame.bind(client);
  client.onFrame = (f: Frame): void => {
    if (match(f)) {
      const data = reply(f);
      if (data !== null) {
        client.send({ flag, sid: f.sid, event: f.event, data });
        return;
      }
    }
    original(f);
  };
  return () => {
    client.onFrame = original;
  };
}

/** Sees every frame `client` receives before it is recorded (or handed to a waiter); returns an undo. */
export function tap(client: RawClient, see: (f: Frame) => boolean): () => void {
  const original = client.onFrame.bind(client);
  client.onFrame = (f: Frame): void => {
    if (!see(f)) original(f);
  };
  return () => {
    client.onFrame = original;
  };
}
