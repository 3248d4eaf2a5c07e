/**
 * The trusted-address list of the admin endpoints (http.adminTrusted, docs/operations.md section 6): addresses
 * and CIDR blocks, IPv4 and IPv6, matched with Node's net.BlockList. A client that reaches an IPv6 listener
 * over IPv4 shows up as `::ffff:a.b.c.d`: it is matched as the IPv4 address it is.
 */
import { BlockList, isIP } from 'node:net';

/** The default: loopback only. */
export const LOOPBACK: readonly string[] = Object.freeze(['127.0.0.0/8', '::1']);

interface Entry {
  address: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/** The entry an item of the list names, or a problem (for config validation). */
function parseEntry(text: string): Entry | string {
  const slash = text.indexOf('/');
  const address = slash < 0 ? text : text.slice(0, slash);
  const version = isIP(address);
  if (version === 0) return `'${text}' is not an IP address or CIDR block (e.g. 10.0.0.0/8, 127.0.0.1, fd00::/8)`;
  const family = version === 4 ? 'ipv4' : 'ipv6';
  const max = version === 4 ? 32 : 128;
  if (slash < 0) return { address, prefix: max, family };
  const prefixText = text.slice(slash + 1);
  const prefix = Number(prefixText);
  if (!/^\d{1,3}$/.test(prefixText) || prefix > max) return `'${text}': the prefix length must be 0..${max}`;
  return { address, prefix, family };
}

/** Why an item of http.adminTrusted is invalid, or '' when it is valid. */
export function trustedEntryProblem(text: string): string {
  const entry = parseEntry(text);
  return typeof entry === 'string' ? entry : '';
}

export class TrustedAddresses {
  private readonly list = new BlockList();
  readonly size: number;

  /** `entries` must be valid (the config validation checks them with trustedEntryProblem). */
  constructor(entries: readonly string[]) {
    for (const text of entries) {
      const entry = parseEntry(text);
      if (typeof entry === 'string') throw new Error(entry);
      this.list.addSubnet(entry.address, entry.prefix, entry.family);
    }
    this.size = entries.length;
  }

  /** True when `remote` (a socket's remoteAddress) is on the list; false for anything that is no address. */
  has(remote: string | undefined): boolean {
    if (remote === undefined || this.size === 0) return false;
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(remote);
    const address = mapped !== null ? mapped[1] : remote;
    const version = isIP(address);
    if (version === 0) return false;
    return this.list.check(address, version === 4 ? 'ipv4' : 'ipv6');
  }
}
