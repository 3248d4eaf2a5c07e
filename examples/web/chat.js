// The example chat page's logic: the browser build of the client SDK over ws (docs/client.md, "In the browser").
// The same conventions as examples/im-chat.mjs, so the two talk to each other:
//   room messages: event `chat.room.<room>`, data JSON { from, text }, subscribed with presence
//   private messages: event `chat.private` sent with `to: <name>` (the session's @ name), handled by onDirect
// With ?login=<url of examples/jwt-login.mjs> the page logs in first and connects with the JWT it gets: the
// broker (access.jwt) then lets the user claim only its own name and use only its rooms. The SDK calls the
// token function again on reconnect and before the token expires (docs/client.md, "Tokens").
import { connect, json } from './socketd-client.js';

const params = new URLSearchParams(location.search);
const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
const host = location.hostname.includes(':') ? `[${location.hostname}]` : location.hostname || '127.0.0.1';
const wsUrl = params.get('url') ?? `${scheme}://${host}:${params.get('ws') ?? '8604'}/`;

const $ = (id) => document.getElementById(id);
const ui = {
  joinForm: $('join-form'), room: $('room'), nick: $('nick'), join: $('join'), leave: $('leave'),
  password: $('password'), sendForm: $('send-form'), text: $('text'), send: $('send'),
  messages: $('messages'), members: $('members'), status: $('status'), title: $('room-title'),
};
if (params.get('room')) ui.room.value = params.get('room');
if (params.get('name')) ui.nick.value = params.get('name');
const loginUrl = params.get('login');
if (loginUrl) {
  ui.password.hidden = false;
  ui.password.required = true;
}
/** The current JWT (login mode). */
let token = '';

async function fetchToken(path, init) {
  const res = await fetch(new URL(path, loginUrl), { method: 'POST', ...init });
  const body = await res.json();
  if (!res.ok) throw new Error(body.error ?? `login backend answered ${res.status}`);
  token = body.token;
  return token;
}

/** The SDK's token function: the login's token first, then fresh ones from /refresh. */
function tokenFor({ reason }) {
  if (reason === 'connect' && token) return token;
  return fetchToken('/refresh', { headers: { authorization: `Bearer ${token}` } });
}

let client = null;
let room = '';
let nick = '';
/** Members of the room by session id: name. */
const members = new Map();

function setState(state, status) {
  document.body.dataset.state = state;
  ui.status.textContent = status;
  const joined = state === 'joined';
  ui.join.disabled = joined || state === 'connecting';
  ui.room.disabled = ui.nick.disabled = ui.password.disabled = joined || state === 'connecting';
  ui.leave.disabled = !joined;
  ui.text.disabled = ui.send.disabled = !joined;
}

function addMessage(from, text, kind = 'room') {
  const li = document.createElement('li');
  li.className = kind;
  if (from) {
    const who = document.createElement('span');
    who.className = 'from';
    who.textContent = from;
    li.append(who);
  }
  li.append(document.createTextNode(text));
  ui.messages.append(li);
  ui.messages.scrollTop = ui.messages.scrollHeight;
}

function renderMembers() {
  const names = [...new Set(members.values())].sort();
  ui.members.replaceChildren(...names.map((name) => {
    const li = document.createElement('li');
    li.textContent = name;
    return li;
  }));
}

async function join(event) {
  event.preventDefault();
  room = ui.room.value.trim();
  nick = ui.nick.value.trim();
  if (!room || !nick) return;
  setState('connecting', `connecting to ${wsUrl} ...`);
  try {
    if (loginUrl) {
      await fetchToken('/login', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ name: nick, password: ui.password.value }) });
    }
    client = await connect(wsUrl, loginUrl ? { name: nick, token: tokenFor } : { name: nick });
    const roomEvent = `chat.room.${room}`;
    client.events.on('disconnect', (e) => setState('connecting', `connection lost (${e.message}), reconnecting ...`));
    client.events.on('reconnect', async () => {
      setState('joined', `in #${room} as ${nick} (reconnected)`);
      await refreshMembers(roomEvent);
    });
    client.onPresence((notice) => {
      if (notice.event !== roomEvent) return;
      const name = notice.name || notice.id;
      if (notice.kind === 'join') {
        if (!members.has(notice.id)) addMessage('', `${name} joined`, 'system');
        members.set(notice.id, name);
      } else if (members.delete(notice.id)) {
        addMessage('', `${name} left`, 'system');
      }
      renderMembers();
    });
    client.events.on('alarm', (e) => addMessage('', `not delivered (${e.alarmCode}): ${e.message}`, 'system'));
    client.onDirect((msg) => {
      const { from, text } = msg.json();
      addMessage(`${from} → you:`, text, 'private');
    });
    await client.on(roomEvent, (msg) => {
      const { from, text } = msg.json();
      addMessage(`${from}:`, text);
    }, { presence: true });
    await refreshMembers(roomEvent);
    ui.title.textContent = `#${room}`;
    addMessage('', `you joined #${room} as ${nick}`, 'system');
    setState('joined', `in #${room} as ${nick}`);
    ui.text.focus();
  } catch (error) {
    const failed = client;
    client = null;
    await failed?.close();
    setState('error', `could not join: ${error.message}`);
  }
}

async function refreshMembers(roomEvent) {
  members.clear();
  for (const entry of await client.presence(roomEvent)) members.set(entry.id, entry.name || entry.id);
  renderMembers();
}

function send(event) {
  event.preventDefault();
  const text = ui.text.value.trim();
  if (!text || client === null) return;
  try {
    const direct = /^\/msg\s+(\S+)\s+(.+)$/.exec(text);
    if (direct) {
      client.send('chat.private', json({ from: nick, text: direct[2] }), { to: direct[1] });
      addMessage(`you → ${direct[1]}:`, direct[2], 'private');
    } else {
      client.send(`chat.room.${room}`, json({ from: nick, text }));
      addMessage(`${nick}:`, text); // the broker never echoes a message to its sender
    }
    ui.text.value = '';
  } catch (error) {
    addMessage('', `not sent: ${error.message}`, 'system');
  }
}

async function leave() {
  const old = client;
  client = null;
  members.clear();
  renderMembers();
  addMessage('', `you left #${room}`, 'system');
  setState('idle', 'not connected');
  await old?.close();
}

ui.joinForm.addEventListener('submit', join);
ui.sendForm.addEventListener('submit', send);
ui.leave.addEventListener('click', leave);
setState('idle', `not connected (broker: ${wsUrl})`);
