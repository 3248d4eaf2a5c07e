/**
 * Which modules does importing one module load? Runs `node --import <register> <probe>` in a child process:
 * a module-customization hook (node:module `register`) appends the URL of every module the ESM loader loads to
 * a file, and the probe adds the CommonJS modules in require's cache (a CommonJS package's own require()
 * calls do not pass through the hook on Node 20). Used to check that the client SDK stays thin
 * (docs/client.md, "Install").
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const HOOKS = `import { appendFileSync } from 'node:fs';
let out;
export function initialize(data) { out = data.out; }
export async function load(url, context, nextLoad) {
  appendFileSync(out, url + '\\n');
  return nextLoad(url, context);
}
`;

const REGISTER = `import { register } from 'node:module';
register(new URL('./hooks.mjs', import.meta.url).href, import.meta.url, { data: { out: process.env.LOAD_TRACE_OUT } });
`;

// The probe lives in \`cwd\` so that a bare specifier resolves from there, as in a user's project.
const PROBE = `import { createRequire } from 'node:module';
import { appendFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
await import(process.env.LOAD_TRACE_TARGET);
const cache = createRequire(import.meta.url).cache;
appendFileSync(process.env.LOAD_TRACE_OUT, Object.keys(cache).map((p) => pathToFileURL(p).href + '\\n').join(''));
`;

/**
 * The URLs (file:, node:) of every module loaded when `specifier` is imported from a module in `cwd`, the
 * specifier's own module included. Throws when the child fails.
 */
export function modulesLoadedBy(specifier: string, cwd: string, env: NodeJS.ProcessEnv = process.env): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'socketd-load-trace-'));
  const probe = join(cwd, `.load-trace-probe-${process.pid}-${Date.now()}.mjs`);
  try {
    writeFileSync(join(dir, 'hooks.mjs'), HOOKS);
    writeFileSync(join(dir, 'register.mjs'), REGISTER);
    writeFileSync(probe, PROBE);
    const out = join(dir, 'loaded.txt');
    writeFileSync(out, '');
    const result = spawnSync(process.execPath, ['--import', pathToFileURL(join(dir, 'register.mjs')).href, probe], {
      cwd,
      env: { ...env, LOAD_TRACE_OUT: out, LOAD_TRACE_TARGET: specifier },
      encoding: 'utf8',
      timeout: 30_000,
    });
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`importing ${specifier} failed (${result.status}): ${result.stderr}`);
    return [...new Set(readFileSync(out, 'utf8').split('\n').filter((l) => l !== ''))];
  } finally {
    rmSync(probe, { force: true });
    rmSync(dir, { recursive: true, force: true });
  }
}

/** What the client SDK must never load: the broker's own modules and its server-side dependencies. */
export const NOT_FOR_CLIENTS: readonly { what: string; test: (url: string) => boolean }[] = [
  ...['pino', 'pino-pretty', 'prom-client', 'commander', 'yaml'].map((name) => ({
    what: `the ${name} package`,
    test: (url: string) => url.includes(`/node_modules/${name}/`),
  })),
  ...['broker', 'config', 'cli', 'http', 'metrics'].map((dir) => ({
    what: `dist/src/${dir}/`,
    test: (url: string) => url.includes(`/dist/src/${dir}/`),
  })),
  { what: 'dist/src/server.js', test: (url: string) => url.endsWith('/dist/src/server.js') },
  { what: 'dist/src/index.js', test: (url: string) => url.endsWith('/dist/src/index.js') },
];

/** The entries of NOT_FOR_CLIENTS that `loaded` breaks, each with the first URL that breaks it. */
export function clientViolations(loaded: readonly string[]): string[] {
  const found: string[] = [];
  for (const rule of NOT_FOR_CLIENTS) {
    const url = loaded.find((u) => rule.test(u));
    if (url !== undefined) found.push(`${rule.what}: ${url}`);
  }
  return found;
}
