/**
 * The repository stands alone: no tracked file reaches outside it (a `../shared` folder beside the clone, an
 * absolute path of a development machine), Markdown links resolve inside the repository or are public
 * addresses, and comments cite the docs rather than an issue tracker the reader does not have.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The repository root: the first folder above this module that holds package.json (tests run from dist/). */
function repoRoot(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); ; dir = dirname(dir)) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'src'))) return dir;
    if (dirname(dir) === dir) throw new Error('repository root not found');
  }
}

const root = repoRoot();

/** Tracked files (git ls-files); the test is skipped in a tree that is not a git checkout (an unpacked tarball). */
function trackedFiles(): string[] | null {
  if (!existsSync(join(root, '.git'))) return null;
  const out = execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8' });
  return out.split('\0').filter((f) => f !== '' && f !== 'package-lock.json' && existsSync(join(root, f)));
}

const files = trackedFiles();
const textFiles = (files ?? []).filter((f) => /\.(ts|mjs|js|json|md|ya?ml|sh|txt|html|css)$|(^|\/)(Dockerfile|run)$/.test(f));
const read = (f: string): string => readFileSync(join(root, f), 'utf8');

test('no tracked file refers to ../shared or to an absolute path of a machine', { skip: files === null }, () => {
  assert.ok(textFiles.length > 50, `expected the repository's files, got ${textFiles.length}`);
  // Built from pieces so that this file does not match itself.
  const shared = new RegExp(['\\.\\./', 'shared', '/'].join(''));
  const machine = new RegExp(['/work', '/|/home/[a-z]', '|/Users/[A-Za-z]'].join(''));
  const offenders: string[] = [];
  for (const f of textFiles) {
    const text = read(f);
    if (shared.test(text)) offenders.push(`${f}: ../shared`);
    if (machine.test(text)) offenders.push(`${f}: ${machine.exec(text)?.[0]}`);
  }
  assert.deepEqual(offenders, []);
});

test('relative links in Markdown resolve to files in the repository', { skip: files === null }, () => {
  const broken: string[] = [];
  for (const f of textFiles.filter((x) => x.endsWith('.md'))) {
    for (const m of read(f).matchAll(/\]\(([^)\s]+)\)/g)) {
      const target = m[1].split('#')[0];
      if (target === '' || /^[a-z]+:/i.test(target)) continue;
      const path = resolve(root, dirname(f), decodeURIComponent(target));
      if (!path.startsWith(root + '/') && path !== root) broken.push(`${f}: ${m[1]} leaves the repository`);
      else if (!existsSync(path)) broken.push(`${f}: ${m[1]} does not exist`);
      else statSync(path);
    }
  }
  assert.deepEqual(broken, []);
});

test('source comments cite docs, not issue numbers', { skip: files === null }, () => {
  const issueRef = new RegExp(['\\bissue', ' ?#\\d+'].join(''), 'i');
  const offenders = textFiles
    .filter((f) => /^(src|test|bench|scripts|examples)\//.test(f) && /\.(ts|mjs|js)$/.test(f))
    .filter((f) => issueRef.test(read(f)));
  assert.deepEqual(offenders, []);
});
