/**
 * Namespaces (docs/namespaces.md): separate routing domains on one broker. A session's namespace is the path
 * of its handshake URL; names, event subscriptions, queue groups, presence and the `$` control events are
 * per namespace, because each namespace has its own SessionRegistry and EventRouter. The router picks the
 * sender's (Session.namespace), so routing never prefixes or compares strings for namespaces, and a pattern
 * can only match inside its own namespace.
 *
 * The default namespace ('' : no path, or `/`) is not in the table: its sessions have `namespace === null`
 * and use the broker's own registry and the wiring point's EventRouter, exactly as without namespaces.
 * Other namespaces are made on first use and dropped when their last session leaves.
 */
import type { HandshakeRefusal, Permissions } from './access.js';
import type { SessionObserver } from './broker.js';
import type { EventRouter } from './event-router.js';
import { DEFAULT_NAMESPACE, isValidNamespaceName } from './namespace-name.js';
import type { Session } from './session.js';
import { SessionRegistry } from './session-registry.js';

export interface NamespaceOptions {
  /** Read the namespace from the handshake URL's path; false: every session is in the default namespace. */
  fromPath: boolean;
  /** Namespaces the operator declared: the only ones with their own metric label. */
  declared: readonly string[];
  /** Refuse a handshake to a namespace not declared (reason `namespace_unknown`). */
  requireDeclared: boolean;
  /** Namespaces that may exist at once besides the default one (reason `too_many_namespaces`). */
  maxNamespaces: number;
}

export class Namespace {
  readonly registry = new SessionRegistry();
  /** Open sessions in it (its registry leaves out sessions announcing their close). */
  sessions = 0;
  constructor(readonly name: string, readonly events: EventRouter) {}
}

export class NamespaceTable implements SessionObserver {
  private readonly table = new Map<string, Namespace>();
  private readonly declared: ReadonlySet<string>;

  constructor(
    readonly options: NamespaceOptions,
    /** The default namespace's event router. */
    readonly defaultEvents: EventRouter,
    /** Makes the event router of a new namespace `name` (same options and counters as the default one). */
    private readonly newEvents: (name: string) => EventRouter,
  ) {
    this.declared = new Set(options.declared);
  }

  /** Namespaces in use besides the default one. */
  get size(): number {
    return this.table.size;
  }

  isDeclared(name: string): boolean {
    return this.declared.has(name);
  }

  get(name: string): Namespace | undefined {
    return this.table.get(name);
  }

  /** Every namespace in use besides the default one. */
  all(): IterableIterator<Namespace> {
    return this.table.values();
  }

  /**
   * The namespace a handshake with `url path` = `name` joins: null for the default one, else the namespace
   * (made when new), or why the handshake is refused. Called once per handshake, after authentication.
   */
  enter(name: string, permissions: Permissions): Namespace | null | HandshakeRefusal {
    if (!this.options.fromPath) return null;
    if (!isValidNamespaceName(name)) {
      return { code: 'namespace_invalid', text: `'${name}' is not a namespace: 1 to 64 letters, digits, '_', '.', '-' (the URL's path)` };
    }
    if (!permissions.canUseNamespace(name)) {
      return { code: 'namespace_forbidden', text: `User '${permissions.user}' may not use the namespace '${name.length === 0 ? '/' : name}'` };
    }
    if (name === DEFAULT_NAMESPACE) return null;
    if (this.options.requireDeclared && !this.declared.has(name)) {
      return { code: 'namespace_unknown', text: `No namespace '${name}' (namespaces.declared)` };
    }
    let ns = this.table.get(name);
    if (ns === undefined) {
      if (this.table.size >= this.options.maxNamespaces) {
        return { code: 'too_many_namespaces', text: `The broker holds its limit of ${this.options.maxNamespaces} namespaces` };
      }
      ns = new Namespace(name, this.newEvents(name));
      this.table.set(name, ns);
    }
    return ns;
  }

  /** The registry of a namespace, '' for the default one's (given); undefined when it is not in use. */
  registryOf(name: string, defaultRegistry: SessionRegistry): SessionRegistry | undefined {
    return name === DEFAULT_NAMESPACE ? defaultRegistry : this.table.get(name)?.registry;
  }

  /** The event router of a namespace ('' for the default one); undefined when it is not in use. */
  eventsOf(name: string): EventRouter | undefined {
    return name === DEFAULT_NAMESPACE ? this.defaultEvents : this.table.get(name)?.events;
  }

  // ----- SessionObserver: each session's event router hears of it ---------------------------------------

  sessionOpened(session: Session): void {
    const ns = session.namespace;
    if (ns === null) {
      this.defaultEvents.sessionOpened(session);
      return;
    }
    ns.sessions++;
    ns.events.sessionOpened(session);
  }

  sessionClosing(session: Session): void {
    (session.namespace?.events ?? this.defaultEvents).sessionClosing(session);
  }

  /** A `$auth` changed the session's permissions: its own namespace's router re-checks its subscriptions. */
  sessionPermissionsChanged(session: Session, previous: Permissions): void {
    (session.namespace?.events ?? this.defaultEvents).sessionPermissionsChanged(session, previous);
  }

  sessionClosed(session: Session, wasOpen: boolean): void {
    const ns = session.namespace;
    if (ns === null) {
      this.defaultEvents.sessionClosed(session, wasOpen);
      return;
    }
    ns.events.sessionClosed(session, wasOpen);
    if (!wasOpen) {
      // Entered at the handshake but never opened: only drop it if it is empty.
      this.dropIfEmpty(ns);
      return;
    }
    ns.sessions--;
    this.dropIfEmpty(ns);
  }

  private dropIfEmpty(ns: Namespace): void {
    if (ns.sessions > 0 || ns.registry.size > 0 || ns.events.subscriptionCount > 0) return;
    if (this.table.get(ns.name) === ns) this.table.delete(ns.name);
  }
}
