/**
 * What the admin endpoints show of sessions, subscriptions and names: one shape for /connz, /subsz, /namez
 * (docs/operations.md section 6) and the admin page's API. Computed on request, never on a timer.
 */
import type { Broker } from '../../broker/broker.js';
import type { EventRouter } from '../../broker/event-router.js';
import type { Session } from '../../broker/session.js';
import type { NamespaceTable } from '../../broker/namespace-table.js';
import { namespaceLabel } from '../../broker/namespace-name.js';

type Subscription = ReturnType<EventRouter['subscriptionsOf']>[number];

/** The event router that holds a session's subscriptions: its namespace's, or the default one. */
function eventsOf(s: Session, defaultEvents: EventRouter): EventRouter {
  return s.namespace?.events ?? defaultEvents;
}

/** A session as /connz lists it. */
export function connectionView(s: Session, events: EventRouter): Record<string, unknown> {
  return {
    id: s.id, name: s.name, transport: s.transport, namespace: namespaceLabel(s.namespace?.name ?? ''),
    remote: `${s.connection.remoteAddress}:${s.connection.remotePort}`,
    state: s.state === 1 ? 'open' : 'handshake',
    since: new Date(s.createdAt).toISOString(), lastSeen: new Date(s.lastSeen).toISOString(),
    queuedBytes: s.outbound.queuedBytes, readingPaused: s.readingPaused, congested: s.outbound.congested,
    streamsOpen: s.streamCount, streamsAnswering: s.legCount,
    subscriptions: eventsOf(s, events).subscriptionsOf(s).length,
  };
}

/** A subscription as /subsz lists it. */
export function subscriptionView(sub: Subscription): Record<string, unknown> {
  return {
    session: sub.subscriber.id, name: sub.subscriber.name, namespace: namespaceLabel(sub.subscriber.namespace?.name ?? ''),
    pattern: sub.pattern,
    group: sub.group || undefined, presence: sub.presence, since: new Date(sub.since).toISOString(),
  };
}

/** One session with everything the admin page's detail view shows (no handshake params: they carry tokens). */
export function sessionDetail(s: Session, events: EventRouter): Record<string, unknown> {
  return {
    ...connectionView(s, events),
    user: s.permissions.user || undefined,
    openedAt: s.openedAt > 0 ? new Date(s.openedAt).toISOString() : undefined,
    congestedSince: s.outbound.congested ? new Date(s.outbound.congestedSince).toISOString() : undefined,
    fragmentsInFlight: s.fragmentCount,
    subscriptionList: eventsOf(s, events).subscriptionsOf(s).map(subscriptionView),
  };
}

/** The session with this id, open or in its handshake. */
export function findSession(broker: Broker, id: string): Session | undefined {
  const open = broker.registry.get(id);
  if (open !== undefined) return open;
  for (const s of broker.allSessions()) if (s.id === id) return s;
  return undefined;
}

/** A subscription pattern with its subscribers: those without a queue group, and each group's members. */
export interface PatternView {
  pattern: string;
  subscribers: number;
  presence: number;
  direct: { id: string; name: string }[];
  groups: { group: string; members: { id: string; name: string }[] }[];
}

/** Every subscription pattern with its subscribers, patterns sorted (per namespace: `ns` labels it). */
export function patternViews(events: EventRouter, namespaces?: NamespaceTable): (PatternView & { namespace: string })[] {
  const byPattern = new Map<string, PatternView & { namespace: string }>();
  const routers: [string, EventRouter][] = [['', events]];
  for (const ns of namespaces?.all() ?? []) routers.push([ns.name, ns.events]);
  for (const [nsName, router] of routers) for (const sub of router.allSubscriptions()) {
    const key = `${nsName}\0${sub.pattern}`;
    let view = byPattern.get(key);
    if (view === undefined) {
      view = { pattern: sub.pattern, namespace: namespaceLabel(nsName), subscribers: 0, presence: 0, direct: [], groups: [] };
      byPattern.set(key, view);
    }
    view.subscribers++;
    if (sub.presence) view.presence++;
    const who = { id: sub.subscriber.id, name: sub.subscriber.name };
    if (sub.group.length === 0) {
      view.direct.push(who);
    } else {
      let group = view.groups.find((g) => g.group === sub.group);
      if (group === undefined) view.groups.push(group = { group: sub.group, members: [] });
      group.members.push(who);
    }
  }
  const order = (v: PatternView & { namespace: string }): string => `${v.namespace}\0${v.pattern}`;
  return [...byPattern.values()].sort((a, b) => (order(a) < order(b) ? -1 : order(a) > order(b) ? 1 : 0));
}

/** Every `@` name with its sessions, names sorted (each namespace's names too, labelled). */
export function nameViews(broker: Broker, namespaces?: NamespaceTable): { name: string; namespace: string; sessions: { id: string; transport: string; remote: string }[] }[] {
  const groups = [...broker.registry.names()].map((g) => ({ ns: '', g }));
  for (const ns of namespaces?.all() ?? []) for (const g of ns.registry.names()) groups.push({ ns: ns.name, g });
  return groups
    .map(({ ns, g }) => ({
      name: g.name,
      namespace: namespaceLabel(ns),
      sessions: g.members.map((m) => ({ id: m.id, transport: m.transport, remote: `${m.connection.remoteAddress}:${m.connection.remotePort}` })),
    }))
    .sort((a, b) => (a.namespace + a.name < b.namespace + b.name ? -1 : a.namespace + a.name > b.namespace + b.name ? 1 : 0));
}
