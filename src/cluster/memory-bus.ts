/**
 * The in-process ClusterBus (docs/cluster.md): several Broker instances of one process joined by a hub, for
 * tests. Deliveries are asynchronous and in order (one FIFO for the whole hub), as over Redis; the hub can
 * cut a node's link (Redis unreachable for it) and heal it, or kill a node (no goodbye: the others see it
 * leave, as after the node timeout).
 */
import { randomBytes } from 'node:crypto';
import type { ClusterBus, ClusterBusEvents } from './bus.js';

export class MemoryHub {
  private readonly buses = new Map<string, MemoryBus>();
  private readonly queue: (() => void)[] = [];
  private scheduled = false;
  /** Batches delivered, for tests. */
  batches = 0;

  /** Runs `task` after everything posted before it, on a later tick. */
  post(task: () => void): void {
    this.queue.push(task);
    if (this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => this.run());
  }

  private run(): void {
    this.scheduled = false;
    // Tasks posted while running go to the next round (a later tick), as network deliveries would.
    const tasks = this.queue.splice(0, this.queue.length);
    for (const task of tasks) task();
  }

  bus(nodeId: string): MemoryBus {
    return new MemoryBus(this, nodeId);
  }

  get(nodeId: string): MemoryBus | undefined {
    return this.buses.get(nodeId);
  }

  /** Buses that are joined and linked, but `except`. */
  others(except: MemoryBus): MemoryBus[] {
    return [...this.buses.values()].filter((b) => b !== except && b.linkUp);
  }

  join(bus: MemoryBus): void {
    if (this.buses.has(bus.nodeId)) throw new Error(`node '${bus.nodeId}' already joined`);
    this.buses.set(bus.nodeId, bus);
    this.meet(bus);
  }

  /** `bus` and every linked node learn each other and exchange their whole interest tables. */
  private meet(bus: MemoryBus): void {
    for (const other of this.others(bus)) {
      this.introduce(bus, other);
      this.introduce(other, bus);
    }
  }

  private introduce(to: MemoryBus, about: MemoryBus): void {
    this.post(() => {
      if (!to.linkUp || !about.linkUp) return;
      to.events!.peerUp(about.nodeId, about.incarnation);
      to.events!.peerInterest(about.nodeId, about.incarnation, [...about.events!.localInterest()], true);
    });
  }

  leave(bus: MemoryBus, reason: string): void {
    if (this.buses.get(bus.nodeId) !== bus) return;
    this.buses.delete(bus.nodeId);
    for (const other of this.others(bus)) this.post(() => other.events!.peerDown(bus.nodeId, reason));
  }

  /** The node loses its link (Redis unreachable for it): both sides drop each other. */
  cut(nodeId: string): void {
    const bus = this.buses.get(nodeId);
    if (bus === undefined || !bus.linkUp) return;
    const others = this.others(bus);
    bus.linkUp = false;
    this.post(() => bus.events!.link(false));
    for (const other of others) {
      this.post(() => other.events!.peerDown(nodeId, 'link down'));
      this.post(() => bus.events!.peerDown(other.nodeId, 'link down'));
    }
  }

  heal(nodeId: string): void {
    const bus = this.buses.get(nodeId);
    if (bus === undefined || bus.linkUp) return;
    bus.linkUp = true;
    this.post(() => bus.events!.link(true));
    this.meet(bus);
  }

  /** The node dies without a word: its deliveries stop, the others see it leave. */
  kill(nodeId: string): void {
    const bus = this.buses.get(nodeId);
    if (bus === undefined) return;
    bus.dead = true;
    this.leave(bus, 'node timeout');
  }
}

export class MemoryBus implements ClusterBus {
  readonly incarnation = randomBytes(6).toString('hex');
  linkUp = true;
  dead = false;
  events: ClusterBusEvents | null = null;
  /** Refuse frames above this backlog (for tests of the backlog cap): bytes. */
  maxBacklogBytes = Infinity;

  constructor(
    private readonly hub: MemoryHub,
    readonly nodeId: string,
  ) {}

  async start(events: ClusterBusEvents): Promise<void> {
    this.events = events;
    this.hub.join(this);
    events.link(true);
  }

  announce(changes: ReadonlyMap<string, number>): void {
    if (!this.linkUp || this.dead) return;
    const entries = [...changes];
    for (const other of this.hub.others(this)) {
      this.hub.post(() => {
        if (this.linkUp && other.linkUp && !this.dead) other.events!.peerInterest(this.nodeId, this.incarnation, entries, false);
      });
    }
  }

  canSend(bytes: number): boolean {
    return this.linkUp && !this.dead && bytes <= this.maxBacklogBytes;
  }

  send(node: string, chunks: readonly Buffer[], bytes: number): void {
    if (!this.linkUp || this.dead) return;
    const batch = Buffer.concat(chunks as Buffer[], bytes);
    const target = this.hub.get(node);
    if (target === undefined) return;
    this.hub.post(() => {
      if (!this.dead && this.linkUp && target.linkUp && !target.dead) {
        this.hub.batches++;
        target.events!.frames(this.nodeId, this.incarnation, batch, 0);
      }
    });
  }

  async stop(): Promise<void> {
    this.hub.leave(this, 'left');
  }
}
