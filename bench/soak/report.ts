/**
 * The soak's report: the `## Soak` section of bench/results.md (also printed), and the replacement of that
 * one section in the file, leaving every other section as it is.
 */
import type { SoakResult } from '../soak.js';

const int = (n: number): string => Math.round(n).toLocaleString('en-US');
const ms = (n: number): string => (n >= 100 ? n.toFixed(0) : n >= 10 ? n.toFixed(1) : n.toFixed(2));
const mib = (n: number): string => n.toFixed(1);
const pct = (n: number): string => `${(100 * n).toFixed(2)}%`;

function codes(map: Record<string, number>): string {
  const e = Object.entries(map).filter(([, v]) => v !== 0).sort((a, b) => b[1] - a[1]);
  return e.length === 0 ? '–' : e.map(([k, v]) => `${k}: ${int(v)}`).join(', ');
}

type O = SoakResult['requests'];

function outcomeRow(label: string, o: O): string {
  const other = Object.values(o.other).reduce((a, b) => a + b, 0);
  return `| ${label} | ${int(o.issued)} | ${int(o.answered)} | ${int(o.alarmed)} | ${codes(o.alarmedByCode)} | ${int(o.requesterChurned)}${o.requesterChurnedUnplanned > 0 ? ` (${int(o.requesterChurnedUnplanned)} unplanned)` : ''} | ${int(o.timeout)} | ${other === 0 ? '0' : codes(o.other)} | ${o.lost === 0 ? '0' : `**${int(o.lost)}**`} |`;
}

export function renderSection(r: SoakResult): string {
  const c = r.connections;
  const b = r.broker;
  const m = r.messages;
  const t = r.timing;
  const L: string[] = [];
  L.push('## Soak', '');
  L.push(
    '`npm run soak` (bench/soak.ts): the broker as its own process (bin/socketd-broker.js, a temporary YAML config, tcp + ws + udp on free',
    'loopback ports), client processes of about 1,000 connections each (bench/soak/worker.ts) plus a small process of stream responders',
    'that is SIGKILLed and restarted during the run; mixed Message / Request / Subscribe traffic with churn. Every Request and Subscribe',
    'issued must end answered, alarmed (SocketdError `alarm`), or failed because the requester\'s own connection was churned;',
    'LOST = issued − (answered + alarmed + requester churned): local timeouts (the broker\'s Alarm 4008 should always come first),',
    'other errors, streams that ended with missing items, and anything still pending. See bench/soak.ts for the roles.',
    '',
  );
  L.push(`- Command: \`${r.command}\` (\`npm run soak\` builds first)`);
  L.push(`- Date: ${r.date}; machine: ${r.machine}`);
  L.push(`- Load average at start ${r.loadAverage.start.map((x) => x.toFixed(2)).join(' / ')}, at end ${r.loadAverage.end.map((x) => x.toFixed(2)).join(' / ')}`);
  L.push(`- Duration: connect ${r.phases.connectS.toFixed(1)} s, traffic ${r.phases.trafficS.toFixed(0)} s, drain ${r.phases.drainS.toFixed(1)} s; whole run ${r.phases.totalS.toFixed(0)} s`);
  L.push(`- Connections: ${int(c.connected)} of ${int(c.planned)} (tcp ${int(c.byTransport.tcp)}, ws ${int(c.byTransport.ws)}, udp ${int(c.byTransport.udp)}) in ${c.processes} client processes; roles: ${Object.entries(c.roles).map(([k, v]) => `${k} ${int(v)}`).join(', ')}`);
  L.push(`- Broker config: defaults except listeners and HTTP on 127.0.0.1 (port 0), \`timeouts.requestMs: ${t.brokerRequestMs}\` (clients: ${t.clientRequestMs}), \`timeouts.streamMs: ${t.brokerStreamMs}\` (clients: ${t.clientStreamMs}), \`log.level: info\`, \`shutdown.drainMs: 2000\`. Limits raised: ${r.configRaised.map((x) => `\`${x.split(' (')[0]}\` (${x.split(' (').slice(1).join(' (')}`).join('; ')}`);
  L.push(`- Load: per requester connection ≤ ${t.requestsInFlight} in flight, ${t.requestsPerSecond}/s; per streamer ≤ ${t.streamsInFlight} streams in flight, ${t.streamsPerSecond}/s (3-5 Replies each); per publisher ${t.messagesPerSecond} Messages/s (96 B)`);
  L.push(`- Churn (every ${t.churnMinMs / 1000}-${t.churnMaxMs / 1000} s per churning connection): ${int(c.gracefulChurns)} graceful (Close, new client), ${int(c.abruptChurns)} abrupt (socket destroyed, SDK reconnect), ${int(c.midStreamKills)} responder sockets destroyed mid-stream, ${c.processKills.length} responder process kills (SIGKILL at ${c.processKills.map((k) => `${k.at.toFixed(0)} s`).join(', ') || '–'}); SDK reconnects ${int(c.sdkReconnects)}; unplanned disconnects ${int(c.unplannedDisconnects)}; connect failures ${codes(c.connectFailures)}`);
  L.push('');
  L.push('### Requests and streams', '');
  L.push('| | issued | answered | alarmed | alarms by code | requester churned | local timeout | other | LOST |');
  L.push('|---|---:|---:|---:|---|---:|---:|---|---:|');
  L.push(outcomeRow('Requests', r.requests));
  L.push(outcomeRow('Streams (Subscribe)', r.streams));
  L.push('');
  L.push(`Stream items received: ${int(r.streams.items)}. Requests answered with wrong data: ${int(r.requests.wrong)}. Still pending after the drain: ${int(r.requests.pending)} requests, ${int(r.streams.pending)} streams. Refused by the SDK before sending (not counted as issued): ${codes({ ...r.requests.notSent, ...r.streams.notSent })}.`);
  L.push('');
  L.push('| by the requester\'s transport | issued | answered | alarmed | alarms by code | requester churned | local timeout | other | LOST |');
  L.push('|---|---:|---:|---:|---|---:|---:|---|---:|');
  for (const [k, o] of Object.entries(r.byRequesterTransport)) L.push(outcomeRow(k.replace(':', 's over ').replace(/^request/, 'Request').replace(/^stream/, 'Stream'), o));
  L.push('');
  L.push('| request target | issued | answered | alarmed | alarms by code | requester churned | LOST |');
  L.push('|---|---:|---:|---:|---|---:|---:|');
  const kindLabel: Record<string, string> = {
    echo: '`@echo` (at once)',
    work: '`work.job.<k>`, group `workers` (at once)',
    slow: '`@slow` (20-300 ms; 1% after the broker timeout)',
    feeder: '`@feeder` (at once; includes the victims)',
    'no-name': '`@nobody` (no such name)',
    'no-route': '`nosuch.<k>` (no subscriber)',
  };
  for (const [k, o] of Object.entries(r.requestsByKind)) {
    L.push(`| ${kindLabel[k] ?? k} | ${int(o.issued)} | ${int(o.answered)} | ${int(o.alarmed)} | ${codes(o.alarmedByCode)} | ${int(o.requesterChurned)} | ${o.lost === 0 ? '0' : `**${int(o.lost)}**`} |`);
  }
  L.push('');
  L.push('### Latency', '');
  L.push('| | count | p50 ms | p99 ms | p99.9 ms | max ms |');
  L.push('|---|---:|---:|---:|---:|---:|');
  const lat = (label: string, q: SoakResult['latency']['requestAll']) => L.push(`| ${label} | ${int(q.count)} | ${ms(q.p50)} | ${ms(q.p99)} | ${ms(q.p999)} | ${ms(q.max)} |`);
  lat('Request round trip, answered, all targets', r.latency.requestAll);
  lat('Request round trip, no designed delay (`@echo`, `work.*`, `@feeder`)', r.latency.requestDirect);
  lat('Stream, Subscribe to ReplyEnd (3-5 Replies, 10-80 ms apart)', r.latency.stream);
  L.push('');
  L.push('Percentiles from 2%-wide log buckets. Client processes share the 2 cores with the broker, so latency includes their queueing.');
  L.push('');
  L.push('### Messages', '');
  L.push('| | expected deliveries | delivered | ratio |');
  L.push('|---|---:|---:|---:|');
  L.push(`| by event, every subscriber (${int(m.subscribers)}) | ${int(m.expected)} | ${int(m.delivered)} | ${pct(m.ratio)} |`);
  L.push(`| by event, stable publishers → stable subscribers | ${int(m.stableExpected)} | ${int(m.stableDelivered)} | ${pct(m.stableRatio)} |`);
  for (const [tr, v] of Object.entries(m.byTransport)) {
    L.push(`| subscribers over ${tr}: all / stable | ${int(v.expected)} / ${int(v.stableExpected)} | ${int(v.delivered)} / ${int(v.stableDelivered)} | ${pct(v.expected === 0 ? 1 : v.delivered / v.expected)} / ${pct(v.stableExpected === 0 ? 1 : v.stableDelivered / v.stableExpected)} |`);
  }
  L.push('');
  L.push(`Sent by event: ${int(m.sentByEvent)} over ${int(m.events)} events (\`chat.room.<r>\`, \`metrics.h<h>.<kind>\`; patterns exact, \`chat.room.*\`, \`metrics.>\`, \`metrics.*.cpu\`). Sent by name (\`@inbox-<k>\`): ${int(m.sentDirect)}, delivered ${int(m.directDelivered)}, Alarms to publishers ${codes(m.directAlarms)}. send() refused: ${codes(m.sendRefused)}. Expected = for each subscriber, the Messages sent on events its patterns match; a churning subscriber misses what is sent while it reconnects (by design), so only the stable → stable ratio should be 100% (udp datagrams may be dropped by the kernel).`);
  L.push('');
  L.push('### Broker process', '');
  L.push(`- RSS: ${mib(b.rssStartMiB)} MiB at start, ${mib(b.rssAtGoMiB)} MiB with every connection open, peak ${mib(b.rssPeakMiB)} MiB (at ${b.rssPeakAtS.toFixed(0)} s), ${mib(b.rssEndTrafficMiB)} MiB after the drain, ${mib(b.rssEndMiB)} MiB after the clients closed`);
  L.push(`- CPU: ${b.cpuSeconds.toFixed(1)} s in all; ${b.cpuTrafficAvgPct.toFixed(0)}% of a core on average during the traffic, peak ${b.cpuPeak10sPct.toFixed(0)}% over 10 s. Client processes: ${r.clients.cpuSeconds.toFixed(0)} CPU s, peak RSS ${r.clients.peakRssMiB.map((x) => x.toFixed(0)).join(' / ')} MiB`);
  L.push(`- Broker counters over the run: Alarms ${codes(b.alarms)}; session closes ${codes(b.sessionCloses)}; handshakes refused ${codes(b.handshakesRefused)}; dropped ${codes(b.dropped)}; late replies ${int(b.lateReplies)}`);
  L.push(`- After the drain: ${b.streamsOpenAfterDrain ?? '?'} streams open, ${b.sessionsOpenAfterDrain ?? '?'} sessions; after the clients closed: ${b.sessionsOpenAfterClose ?? '?'} sessions (${codes(b.connectionsOpenAfterClose)}; udp sessions whose socket was destroyed wait for \`timeouts.idleMs\`)`);
  L.push(`- Broker log warnings/errors: ${codes(b.logWarnings)}; exit on SIGTERM: ${b.exitOnSigterm === null ? 'did not exit' : b.exitOnSigterm.signal ?? `code ${b.exitOnSigterm.code}`}`);
  L.push('');
  L.push('| t (s) | phase | RSS MiB | CPU % | sessions | streams open |');
  L.push('|---:|---|---:|---:|---:|---:|');
  for (const s of b.series) L.push(`| ${s.t} | ${s.phase} | ${mib(s.rssMiB)} | ${s.cpuPct.toFixed(0)} | ${s.sessions === null ? '–' : int(s.sessions)} | ${s.streams === null ? '–' : int(s.streams)} |`);
  L.push('');
  const v = r.verdict;
  L.push(`**Result: ${v.pass ? 'PASS' : 'FAIL'}** — LOST Requests ${v.lostRequests}, LOST streams ${v.lostStreams}${v.missingReports > 0 ? `, ${v.missingReports} client processes did not report` : ''}.`);
  if (r.lostSamples.length > 0) {
    L.push('');
    L.push('First LOST cases:');
    L.push('');
    for (const s of r.lostSamples.slice(0, 10)) {
      L.push(`- ${s.what} ${s.kind} from ${s.conn} (${s.transport}): ${s.code} after ${s.endedAt - s.issuedAt} ms (issued at ${(s.issuedAt / 1000).toFixed(1)} s)${s.items !== undefined ? `, ${s.items} items` : ''}: ${s.message}`);
    }
  }
  L.push('');
  return L.join('\n');
}

export function renderSummary(r: SoakResult): string {
  return `\n${renderSection(r)}\n`;
}

/** Replaces the `## Soak` section (up to the next `## ` heading) or appends it. */
export function replaceSection(md: string, section: string): string {
  const lines = md.split('\n');
  const start = lines.findIndex((l) => l.trim() === '## Soak');
  const body = section.replace(/\n+$/, '');
  if (start === -1) return `${md.replace(/\n*$/, '')}\n\n${body}\n`;
  let end = lines.findIndex((l, i) => i > start && /^## /.test(l));
  if (end === -1) end = lines.length;
  const before = lines.slice(0, start).join('\n').replace(/\n*$/, '');
  const after = lines.slice(end).join('\n');
  return `${before}\n\n${body}\n${after.length > 0 ? `\n${after.replace(/\n*$/, '')}\n` : ''}`;
}
