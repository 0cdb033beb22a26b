/**
 * One writer of the disk-fsync bound (bench/disk.ts), in a process of its own as each
 * server is: writes an 8 KiB page into a file made like a WAL segment and fsyncs it,
 * at the task's pace, as many times as it asks, starting with the other writers
 * (bench/together.ts); sends the times to the parent and removes its file.
 */
import { closeSync, fsyncSync, ftruncateSync, openSync, rmSync, writeSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { sharedNowMs } from './clock.js';
import { serveTogether } from './together.js';

const PAGE_BYTES = 8192;
/** A WAL segment's size: the page moves through it as a log's tail does. */
const FILE_BYTES = 16 * 1024 * 1024;

export interface WriterTask {
  file: string;
  samples: number;
  paceMs: number;
}

/** Opens the writer's file; the returned measurement writes and fsyncs it `samples` times, then removes it. */
async function prepareFsyncs({ file, samples, paceMs }: WriterTask): Promise<() => Promise<number[]>> {
  const fd = openSync(file, 'w+');
  ftruncateSync(fd, FILE_BYTES);
  return async () => {
    try {
      const page = Buffer.alloc(PAGE_BYTES, 0x5a);
      const times: number[] = [];
      for (let i = 0; i < samples; i++) {
        const start = sharedNowMs();
        writeSync(fd, page, 0, PAGE_BYTES, (i * PAGE_BYTES) % FILE_BYTES);
        fsyncSync(fd);
        times.push(sharedNowMs() - start);
        if (i + 1 < samples) await sleep(paceMs);
      }
      return times;
    } finally {
      closeSync(fd);
      rmSync(file, { force: true });
    }
  };
}

serveTogether(prepareFsyncs);
