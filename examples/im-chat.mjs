#!/usr/bin/env node
// An IM chat in the terminal on the client SDK: rooms (subscriptions with presence), private messages (by @ name)
// and presence (/who). It talks to the example web page (/examples/chat/ on the broker's HTTP port) too: the same
// events, `chat.room.<room>` for rooms and `chat.private` sent `to` a name, data JSON { from, text }.
//
//   npm start                                            # terminal 1: the broker
//   node examples/im-chat.mjs --name alice --room lobby  # terminal 2 (and more: one per user)
//   node examples/im-chat.mjs --demo                     # a scripted conversation between two clients; exits 0
//
// Options: --url URL (or SOCKETD_URL; default sd:tcp://127.0.0.1:8602; any transport: sd:ws://127.0.0.1:8604/,
// sd:udp://127.0.0.1:8603), --name NAME (default: $USER), --room ROOM (joined at start), --demo.
// Commands: /join ROOM, /leave [ROOM], /rooms, /who [ROOM], /msg NAME TEXT, /quit; other lines go to the room.
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { connect, json } from '../dist/src/client/index.js';

const { values, positionals } = parseArgs({
  options: {
    url: { type: 'string' },
    name: { type: 'string' },
    room: { type: 'string' },
    demo: { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
  allowPositionals: true,
});
if (values.help) {
  console.log('usage: node examples/im-chat.mjs [--url sd:tcp://127.0.0.1:8602] [--name NAME] [--room ROOM] [--demo]');
  process.exit(0);
}
const url = values.url ?? positionals[0] ?? process.env.SOCKETD_URL ?? 'sd:tcp://127.0.0.1:8602';
const ROOM_PREFIX = 'chat.room.';
const PRIVATE = 'chat.private';
const VALID = /^[A-Za-z0-9_-]{1,64}$/;

/** One chat user: a client, the rooms it is in, and a printer for what it sees. */
class ChatUser {
  constructor(client, name, print) {
    this.client = client;
    this.name = name;
    this.print = print;
    this.rooms = new Map(); // room -> Subscription
    this.current = null;
    client.onPresence((n) => {
      if (!n.event.startsWith(ROOM_PREFIX)) return;
      const who = n.name || n.id;
      if (who === this.name) return;
      this.print(`* ${who} ${n.kind === 'join' ? 'joined' : 'left'} #${n.event.slice(ROOM_PREFIX.length)}`);
    });
    client.onDirect((msg) => {
      const { from, text } = msg.json();
      this.print(`[private] ${from}: ${text}`);
    });
    client.events.on('alarm', (e) => this.print(`! not delivered (${e.alarmCode}): ${e.message}`));
    client.events.on('disconnect', (e) => this.print(`! connection lost: ${e.message}`));
    client.events.on('reconnect', () => this.print('! reconnected'));
  }

  static async connect(name, print) {
    const client = await connect(url, { name });
    return new ChatUser(client, name, print);
  }

  async join(room) {
    if (!VALID.test(room)) throw new Error(`invalid room '${room}': letters, digits, _ and - only`);
    if (!this.rooms.has(room)) {
      const sub = await this.client.on(ROOM_PREFIX + room, (msg) => {
        const { from, text } = msg.json();
        this.print(`[#${room}] ${from}: ${text}`);
      }, { presence: true });
      this.rooms.set(room, sub);
    }
    this.current = room;
    this.print(`* you joined #${room}`);
  }

  async leave(room = this.current) {
    const sub = room === null ? undefined : this.rooms.get(room);
    if (sub === undefined) throw new Error(`not in #${room}`);
    await sub.off();
    this.rooms.delete(room);
    if (this.current === room) this.current = this.rooms.keys().next().value ?? null;
    this.print(`* you left #${room}`);
  }

  say(text, room = this.current) {
    if (room === null) throw new Error('join a room first: /join ROOM');
    this.client.send(ROOM_PREFIX + room, json({ from: this.name, text }));
    this.print(`[#${room}] ${this.name}: ${text}`); // the broker never echoes a message to its sender
  }

  whisper(to, text) {
    this.client.send(PRIVATE, json({ from: this.name, text }), { to });
    this.print(`[private -> ${to}] ${text}`);
  }

  async who(room = this.current) {
    if (room === null) throw new Error('join a room first: /join ROOM');
    const members = await this.client.presence(ROOM_PREFIX + room);
    const names = members.map((m) => m.name || m.id).sort();
    this.print(`* in #${room}: ${names.join(', ')}`);
    return names;
  }

  close() {
    return this.client.close();
  }
}

// ----- demo: a scripted conversation -------------------------------------------------------------------------

async function demo() {
  const seen = { alice: [], bob: [] };
  const waiters = [];
  const printer = (who) => (line) => {
    console.log(`${who.padEnd(5)} | ${line}`);
    seen[who].push(line);
    for (const w of [...waiters]) {
      if (w.who === who && line.includes(w.text)) {
        waiters.splice(waiters.indexOf(w), 1);
        clearTimeout(w.timer);
        w.resolve();
      }
    }
  };
  /** Resolves once `who` printed a line holding `text` (or has already). */
  const until = (who, text) => seen[who].some((l) => l.includes(text)) ? Promise.resolve() : new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${who} never saw '${text}'`)), 10_000);
    waiters.push({ who, text, resolve, timer });
  });

  console.log(`demo: two clients on ${url}`);
  const alice = await ChatUser.connect('alice', printer('alice'));
  const bob = await ChatUser.connect('bob', printer('bob'));
  try {
    await alice.join('lobby');
    await bob.join('lobby');
    await until('alice', '* bob joined #lobby');
    await alice.who();
    alice.say('hi bob, welcome to the lobby');
    await until('bob', '[#lobby] alice: hi bob');
    bob.say('thanks alice!');
    await until('alice', '[#lobby] bob: thanks alice!');
    bob.whisper('alice', 'psst, this one is just for you');
    await until('alice', '[private] bob: psst');
    alice.whisper('bob', 'got it');
    await until('bob', '[private] alice: got it');
    await alice.leave('lobby');
    await until('bob', '* alice left #lobby');
    await bob.who();
  } finally {
    await alice.close();
    await bob.close();
  }
  console.log('demo: done');
}

// ----- interactive -------------------------------------------------------------------------------------------

async function interactive() {
  const name = values.name ?? process.env.USER ?? `guest-${Math.floor(Math.random() * 10_000)}`;
  const rl = createInterface({ input: process.stdin, output: process.stdout, prompt: '> ' });
  const print = (line) => {
    process.stdout.write(process.stdout.isTTY ? `\r\x1b[K${line}\n` : `${line}\n`); // over the prompt in a terminal
    rl.prompt(true);
  };
  const user = await ChatUser.connect(name, print);
  print(`connected to ${url} as ${name}. /join ROOM, /who, /msg NAME TEXT, /leave, /rooms, /quit`);
  if (values.room !== undefined) await user.join(values.room);
  const quit = async () => {
    rl.close();
    await user.close();
    process.exit(0);
  };
  process.on('SIGINT', quit);
  rl.on('close', () => { void quit(); });
  rl.on('line', async (line) => {
    const text = line.trim();
    try {
      if (text.length === 0) return;
      const [command, ...rest] = text.split(/\s+/);
      switch (command) {
        case '/join': await user.join(rest[0] ?? ''); break;
        case '/leave': await user.leave(rest[0]); break;
        case '/rooms': print(`* rooms: ${[...user.rooms.keys()].map((r) => (r === user.current ? `#${r} (current)` : `#${r}`)).join(', ') || 'none'}`); break;
        case '/who': await user.who(rest[0]); break;
        case '/msg':
          if (rest.length < 2) throw new Error('usage: /msg NAME TEXT');
          user.whisper(rest[0], text.replace(/^\/msg\s+\S+\s+/, ''));
          break;
        case '/quit': await quit(); break;
        default:
          if (command.startsWith('/')) throw new Error(`unknown command ${command}`);
          user.say(text);
      }
    } catch (error) {
      print(`! ${error.message}`);
    }
    rl.prompt(true);
  });
  rl.prompt();
}

try {
  if (values.demo) await demo();
  else await interactive();
} catch (error) {
  console.error(`im-chat: ${error.message}`);
  process.exit(1);
}
