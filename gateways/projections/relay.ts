import type { Logger } from '../../router/index.js';
import type { EventStore } from '../../store/index.js';
import type { OutgoingRecord, ProjectionSource, SourceBatch } from './sources.js';
import { Pause } from './pause.js';

/** Records in one publish (one producer request); smaller when their bytes reach SOURCE_BATCH_BYTES_MAX. */
export const RELAY_BATCH_RECORDS_MAX = 1_000;
/** With nothing to publish, a relay looks again after this long even if nothing woke it. */
export const RELAY_POLL_MS = 500;
/** A published position is written to the store at most this often (and whenever the relay goes idle). */
export const CURSOR_SAVE_INTERVAL_MS = 200;
/** Retries of a failed publish back off from the first to the last, doubling, with full jitter. */
export const RETRY_MIN_MS = 250;
export const RETRY_MAX_MS = 30_000;
/** A publish still unacknowledged after this long is logged (the bus holds it while its broker is away). */
export const PUBLISH_WAIT_WARN_MS = 5_000;
/** While publishing keeps failing or waiting, a warning is logged again this often. */
const FAILING_LOG_EVERY_MS = 60_000;

/** Where records go: resolves once the bus has acknowledged every one of them. */
export interface RecordSink {
  publish(records: readonly OutgoingRecord[]): Promise<void>;
}

export interface RelayDeps {
  /** The cursor's name in projection_cursors. */
  cursorName: string;
  source: ProjectionSource;
  sink: RecordSink;
  store: Pick<EventStore, 'projectionCursor' | 'saveProjectionCursor'>;
  log: Logger;
  /** Called with each position durably published (its cursor written): the routing relay trims the outbox. */
  onSaved?(position: number): Promise<void>;
  nowMs?: () => number;
}

/**
 * Publishes one source in order, batch by batch, and moves its cursor only after the bus
 * acknowledged the batch. A crash before the cursor moved republishes the same records in
 * the same order: copies, never a loss or a reordering, and subscribers drop copies. A
 * failed publish is retried as it was (the same batch) with backoff, for as long as the
 * node runs; the node never waits for it.
 */
export class Relay {
  private position = 0;
  private savedPosition = 0;
  private lastSaveMs = 0;
  private stopping = false;
  private readonly pause = new Pause(() => this.stopping);
  private woken = false;
  private loop: Promise<void> | undefined;
  private failingSinceMs: number | undefined;
  private lastWarnMs = 0;
  private readonly nowMs: () => number;
  /** Records published since start, copies included. */
  published = 0;

  constructor(private readonly deps: RelayDeps) {
    this.nowMs = deps.nowMs ?? Date.now;
  }

  /** The source position published up to (in memory; the store may be up to CURSOR_SAVE_INTERVAL_MS behind). */
  get publishedPosition(): number {
    return this.position;
  }

  async start(): Promise<void> {
    this.position = this.savedPosition = (await this.deps.store.projectionCursor(this.deps.cursorName)) ?? 0;
    this.loop = this.run().catch((error: unknown) => this.deps.log.error({ err: error, relay: this.deps.cursorName }, 'projection relay stopped'));
  }

  /** There may be something new to publish. */
  wake(): void {
    this.woken = true;
    this.pause.wake();
  }

  /** Waits (at most `timeoutMs`) until everything in the source now is published; says whether it was. */
  async drain(timeoutMs: number): Promise<boolean> {
    const target = await this.deps.source.head();
    const deadline = this.nowMs() + timeoutMs;
    while (this.position < target && this.nowMs() < deadline && !this.stopping) {
      this.wake();
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    return this.position >= target;
  }

  /** Ends the loop after the publish in flight (waiting at most `timeoutMs` for it) and writes the cursor. */
  async stop(timeoutMs: number): Promise<void> {
    this.stopping = true;
    this.wake();
    await Promise.race([this.loop, new Promise((resolve) => setTimeout(resolve, timeoutMs).unref())]);
    await this.saveCursor().catch(() => undefined);
  }

  private async run(): Promise<void> {
    let batch: SourceBatch | undefined;
    /** The batch after `batch`, read while `batch` is being published: reading and the broker's work overlap. */
    let next: Promise<SourceBatch> | undefined;
    let attempt = 0;
    while (!this.stopping) {
      this.woken = false;
      try {
        if (!batch) {
          const read = next ?? this.deps.source.read(this.position, RELAY_BATCH_RECORDS_MAX);
          next = undefined;
          batch = await read;
        }
        if (batch.records.length > 0) {
          if (!next) {
            next = this.deps.source.read(batch.position, RELAY_BATCH_RECORDS_MAX);
            next.catch(() => undefined);
          }
          await this.watched(this.deps.sink.publish(batch.records));
        }
      } catch (error) {
        this.failed(batch !== undefined ? 'publishing to the bus failed' : 'reading the store failed', error);
        await this.pause.for(retryDelayMs(attempt++), false);
        continue;
      }
      this.recovered(attempt);
      attempt = 0;
      const moved = batch.position > this.position;
      this.published += batch.records.length;
      this.position = Math.max(this.position, batch.position);
      batch = undefined;
      if (!moved) {
        await this.saveCursor();
        if (!this.woken) await this.pause.for(RELAY_POLL_MS);
      } else if (this.nowMs() - this.lastSaveMs >= CURSOR_SAVE_INTERVAL_MS) await this.saveCursor();
    }
  }

  /** Writes the cursor if it moved; a failure is logged and retried at the next save (the cursor only lags). */
  private async saveCursor(): Promise<void> {
    const position = this.position;
    if (position === this.savedPosition) return;
    try {
      await this.deps.store.saveProjectionCursor(this.deps.cursorName, position);
      this.savedPosition = position;
      this.lastSaveMs = this.nowMs();
      await this.deps.onSaved?.(position);
    } catch (error) {
      if (!this.stopping) this.deps.log.warn({ err: error, relay: this.deps.cursorName }, 'projection cursor not written; retrying');
    }
  }

  /** A publish, with a warning while it waits longer than PUBLISH_WAIT_WARN_MS (and every minute after). */
  private async watched(publish: Promise<void>): Promise<void> {
    const startedMs = this.nowMs();
    const timer = setInterval(() => {
      if (this.nowMs() - startedMs >= PUBLISH_WAIT_WARN_MS) this.failed('publishing to the bus is waiting for its broker', undefined);
    }, PUBLISH_WAIT_WARN_MS / 5);
    try {
      await publish;
    } finally {
      clearInterval(timer);
    }
  }

  private failed(what: string, error: unknown): void {
    const now = this.nowMs();
    this.failingSinceMs ??= now;
    if (this.stopping || now - this.lastWarnMs < FAILING_LOG_EVERY_MS) return;
    this.lastWarnMs = now;
    const cause = error === undefined ? {} : { err: error instanceof Error ? error.message : String(error) };
    this.deps.log.warn({ relay: this.deps.cursorName, ...cause, failingForMs: now - this.failingSinceMs }, `${what}; retrying`);
  }

  private recovered(attempts: number): void {
    if (this.failingSinceMs === undefined) return;
    this.deps.log.info({ relay: this.deps.cursorName, attempts, failedForMs: this.nowMs() - this.failingSinceMs }, 'publishing again');
    this.failingSinceMs = undefined;
    this.lastWarnMs = 0;
  }
}

/** Exponential backoff with full jitter between RETRY_MIN_MS and RETRY_MAX_MS. */
export function retryDelayMs(attempt: number, random: () => number = Math.random): number {
  const ceiling = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** Math.min(attempt, 20));
  return RETRY_MIN_MS + Math.floor(random() * (ceiling - RETRY_MIN_MS));
}
