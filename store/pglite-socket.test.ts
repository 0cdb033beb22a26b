import { runInNewContext } from 'node:vm';
import v8 from 'node:v8';
import { afterEach, describe, expect, it } from 'vitest';
import { openPglite, type SqlDriver } from './index.js';

// A full collection on demand, so what the heap holds is measured, not garbage not yet collected.
v8.setFlagsFromString('--expose-gc');
const collectGarbage = runInNewContext('gc') as () => void;

function heapAfterCollection(): number {
  collectGarbage();
  return process.memoryUsage().heapUsed;
}

let driver: SqlDriver | undefined;
afterEach(async () => {
  await driver?.close();
  driver = undefined;
});

describe('the socket into the embedded engine', () => {
  it('keeps nothing of the answers it passed on', async () => {
    driver = await openPglite();
    const rowChars = 64 * 1024;
    const answers = 200;
    const ask = async () => (await driver!.query<{ text: string }>(`select repeat('x', $1::int) as text`, [rowChars]))[0]!.text.length;
    expect(await ask()).toBe(rowChars);
    const before = heapAfterCollection();
    let read = 0;
    for (let i = 0; i < answers; i++) read += await ask();
    const grown = heapAfterCollection() - before;
    expect(read).toBe(rowChars * answers);
    // 12.5 MiB went through; an engine that kept its own parsed copy of each answer grows by at least that much.
    expect(grown).toBeLessThan((rowChars * answers) / 4);
  });
});
