/**
 * Which TCP connections a process holds, from /proc (S6: has the server cut the stalled subscriber off?). A
 * client that stopped reading cannot tell by itself: its paused socket never sees the server's close.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs';

interface TcpEntry {
  localPort: number;
  remotePort: number;
  state: number;
  inode: string;
}

function socketInodes(pid: number): Set<string> {
  const inodes = new Set<string>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return inodes;
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m !== null) inodes.add(m[1]!);
    } catch {
      /* closed meanwhile */
    }
  }
  return inodes;
}

function tcpTable(): TcpEntry[] {
  const out: TcpEntry[] = [];
  for (const file of ['/proc/net/tcp', '/proc/net/tcp6']) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch {
      continue;
    }
    for (const line of text.split('\n').slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      out.push({
        localPort: parseInt(f[1]!.split(':')[1]!, 16),
        remotePort: parseInt(f[2]!.split(':')[1]!, 16),
        state: parseInt(f[3]!, 16),
        inode: f[9]!,
      });
    }
  }
  return out;
}

/** Local ports of the process's TCP connections to `serverPort`. */
export function clientPorts(pid: number, serverPort: number): number[] {
  const inodes = socketInodes(pid);
  return tcpTable().filter((e) => e.remotePort === serverPort && inodes.has(e.inode)).map((e) => e.localPort);
}

const ESTABLISHED = 1;

/** True while the server process holds an established connection from `clientPort`. */
export function serverHolds(serverPid: number, serverPort: number, clientPort: number): boolean {
  const inodes = socketInodes(serverPid);
  return tcpTable().some((e) => e.localPort === serverPort && e.remotePort === clientPort && e.state === ESTABLISHED && inodes.has(e.inode));
}
