#!/usr/bin/env node
// Empties dist/ before `npm pack` / `npm publish` builds it again (the `prepack` script), so the tarball holds
// only what the current sources compile to: no output of a deleted or renamed source file.
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

rmSync(fileURLToPath(new URL('../dist', import.meta.url)), { recursive: true, force: true });
