import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';

function* filesUnder(dir: string): Generator<string> {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) yield* filesUnder(path);
    else yield path;
  }
}

/** Every file of a node's data directory that contains `needle` (text, or raw bytes such as a key). */
export function filesContaining(dir: string, needle: string | Uint8Array): string[] {
  const bytes = typeof needle === 'string' ? Buffer.from(needle, 'utf8') : Buffer.from(needle);
  return [...filesUnder(dir)].filter((file) => readFileSync(file).includes(bytes));
}
