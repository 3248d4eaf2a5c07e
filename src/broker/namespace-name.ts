/**
 * Namespace names (docs/namespaces.md): the path of the handshake URL, `sd:tcp://host:8602/tenant-a`. The
 * default namespace has the empty name (no path, or `/`).
 */

/** 1 to 64 of letters, digits, `_`, `.`, `-`, starting with a letter or digit. */
const NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export const DEFAULT_NAMESPACE = '';

export function isValidNamespaceName(name: string): boolean {
  return name === DEFAULT_NAMESPACE || NAME.test(name);
}

/** How a namespace is shown in admin output and logs: its name, or `/` for the default one. */
export function namespaceLabel(name: string): string {
  return name.length === 0 ? '/' : name;
}
