/** Rewrites one kind of `## ` section of bench/results.md, leaving every other section as it is. */
import { readFileSync, writeFileSync } from 'node:fs';

const HEADER = '# Benchmark results\n\nFigures from the benchmarks under `bench/`; see `bench/README.md` for how to run them.\n';

/**
 * Removes every `## ` section whose heading line satisfies `owns`, then inserts `text` (which starts with its
 * own `## ` heading) where the first removed section was, or else before the first `## ` section (`first`)
 * or at the end.
 */
export function replaceSections(file: string, owns: (heading: string) => boolean, text: string, where: 'first' | 'last' = 'last'): void {
  let current: string;
  try {
    current = readFileSync(file, 'utf8');
  } catch {
    current = HEADER;
  }
  const lines = current.split('\n');
  const blocks: { heading: string | null; lines: string[] }[] = [{ heading: null, lines: [] }];
  for (const line of lines) {
    if (line.startsWith('## ')) blocks.push({ heading: line, lines: [line] });
    else blocks[blocks.length - 1]!.lines.push(line);
  }
  const firstOwned = blocks.findIndex((b) => b.heading !== null && owns(b.heading));
  const kept = blocks.filter((b) => b.heading === null || !owns(b.heading));
  const block = { heading: '', lines: text.trimEnd().split('\n').concat(['']) };
  let at: number;
  if (firstOwned !== -1) at = blocks.slice(0, firstOwned).filter((b) => b.heading === null || !owns(b.heading)).length;
  else at = where === 'first' ? 1 : kept.length;
  kept.splice(at, 0, block);
  const out = kept
    .map((b) => b.lines.join('\n').trimEnd())
    .filter((s) => s.length > 0)
    .join('\n\n');
  writeFileSync(file, `${out}\n`);
}
