/**
 * Shared by the orchestrator (bench/run.ts) and the role processes (bench/roles/*): the systems, the role
 * configuration, the IPC messages and the /proc samplers.
 */
import { readFileSync } from 'node:fs';

/** Every system the harness knows. */
/**
 * `socketd-raw-tcp` / `socketd-raw-ws`: the same broker driven by the bench's minimal raw client by `@` name
 * (bench/systems/raw.ts), S1 and S2 only.
 */
export const SYSTEM_NAMES = ['socketd-tcp', 'socketd-ws', 'nats', 'mosquitto', 'aedes', 'socketd-raw-tcp', 'socketd-raw-ws'] as const;
/** Systems that only run some scenarios (their client cannot do the rest). */
export const SYSTEM_SCENARIOS: Partial<Record<SystemName, readonly string[]>> = {
  'socketd-raw-tcp': ['S1', 'S2'],
  'socketd-raw-ws': ['S1', 'S2'],
};
/** The systems a plain `npm run bench` runs (the raw ones only when named with --systems). */
export const DEFAULT_SYSTEMS: readonly SystemName[] = ['socketd-tcp', 'socketd-ws', 'nats', 'mosquitto', 'aedes'];
export type SystemName = (typeof SYSTEM_NAMES)[number];

/** How a role process reaches a running server. */
export interface Target {
  system: SystemName;
  host: string;
  port: number;
}

/** Wall-clock time in ms with sub-ms resolution, comparable across processes on one machine. */
export function now(): number {
  return performance.timeOrigin + performance.now();
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The role's configuration travels as JSON in argv[2]. */
export function roleConfig<T>(): T {
  const raw = process.argv[2];
  if (raw === undefined) throw new Error('role: missing JSON configuration argument');
  return JSON.parse(raw) as T;
}

export type ToParent =
  | { type: 'ready' }
  | { type: 'progress'; at: number; count: number; bytes?: number }
  | { type: 'result'; result: Record<string, unknown> }
  | { type: 'error'; message: string };

export type ToRole = { type: 'go' } | { type: 'stop' } | { type: 'stall' };

function signal(): { promise: Promise<void>; fire(): void } {
  let fire!: () => void;
  const promise = new Promise<void>((resolve) => (fire = resolve));
  return { promise, fire };
}
const stopSignal = signal();
const stallSignal = signal();
/** Resolves when the orchestrator sends 'stop'. */
export const stopped: Promise<void> = stopSignal.promise;
/** Resolves when the orchestrator sends 'stall' (S6). */
export const stallOrdered: Promise<void> = stallSignal.promise;

export function tell(message: ToParent): void {
  process.send?.(message);
}

/**
 * Runs a role: `prepare` connects (and subscribes), then 'ready' is reported; on 'go' `run` starts. A role
 * that fails reports 'error' and exits 1. 'stop' and 'stall' resolve `stopped` and `stallOrdered`.
 */
export async function runRole(prepare: () => Promise<void>, run: () => Promise<Record<string, unknown>>): Promise<void> {
  const fail = (error: unknown): void => {
    tell({ type: 'error', message: error instanceof Error ? `${error.message}` : String(error) });
    setTimeout(() => process.exit(1), 50);
  };
  process.on('uncaughtException', fail);
  process.on('unhandledRejection', fail);
  process.on('disconnect', () => process.exit(0));
  let started = false;
  process.on('message', (m: ToRole) => {
    if (m.type === 'go' && !started) {
      started = true;
      run().then(
        (result) => {
          const cpu = process.cpuUsage();
          tell({ type: 'result', result: { ...result, cpuMs: (cpu.user + cpu.system) / 1000 } });
        },
        fail,
      );
    } else if (m.type === 'stop') {
      stopSignal.fire();
    } else if (m.type === 'stall') {
      stallSignal.fire();
    }
  });
  try {
    await prepare();
    tell({ type: 'ready' });
  } catch (error) {
    fail(error);
  }
}

// ----- /proc -------------------------------------------------------------------------------------------

export const CLK_TCK = 100;

/** utime + stime of a process in ms (CLK_TCK 100), or NaN when it is gone. */
export function procCpuMs(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    const utime = Number(fields[11]);
    const stime = Number(fields[12]);
    return ((utime + stime) * 1000) / CLK_TCK;
  } catch {
    return Number.NaN;
  }
}

/** VmRSS and VmHWM in bytes, or NaN when the process is gone. */
export function procMem(pid: number): { rss: number; hwm: number } {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (key: string): number => {
      const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(status);
      return m === null ? Number.NaN : Number(m[1]) * 1024;
    };
    return { rss: kb('VmRSS'), hwm: kb('VmHWM') };
  } catch {
    return { rss: Number.NaN, hwm: Number.NaN };
  }
}

/** Sorted-array percentile (nearest rank). */
export function percentile(sorted: Float64Array | number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank]!;
}
