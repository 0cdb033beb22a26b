import type { AuditEntry } from '../store/index.js';
import type { Now } from './clock.js';

/** Entries written as they come per key and minute; past this they are counted and summarised. */
export const AUDIT_VERBATIM_PER_WINDOW = 3;
export const AUDIT_WINDOW_MS = 60_000;
/** Keys tracked at once; when full, every open window is summarised and the map starts over. */
const AUDIT_KEYS_MAX = 10_000;
const FLUSH_EVERY_MS = 10_000;
/** What a peer may put into one journal entry's detail. */
export const AUDIT_DETAIL_CHARS_MAX = 300;

interface Window {
  startedAt: number;
  written: number;
  suppressed: number;
  codes: Map<string, number>;
  sample: AuditEntry;
}

/**
 * The audit journal's front door. An entry given a coalescing key (a source address, a
 * peer) is written as it comes for the first few of each minute; the rest of that
 * minute is counted by code and written as one summary entry when the minute ends. A
 * flood of refusals therefore costs a couple of rows a minute, not one per refusal.
 */
export class AuditJournal {
  private readonly windows = new Map<string, Window>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly write: (entry: AuditEntry) => Promise<void>,
    private readonly now: Now,
  ) {
    this.timer = setInterval(() => void this.flush(false), FLUSH_EVERY_MS);
    this.timer.unref();
  }

  async record(entry: AuditEntry, key?: string): Promise<void> {
    const safe = { ...entry, detail: cleanDetail(entry.detail) };
    if (key === undefined) return this.write(safe);
    const windowKey = `${entry.kind}\u0000${key}`;
    let window = this.windows.get(windowKey);
    if (window && this.now() - window.startedAt >= AUDIT_WINDOW_MS) {
      this.windows.delete(windowKey);
      await this.summarise(window);
      window = undefined;
    }
    if (!window) {
      if (this.windows.size >= AUDIT_KEYS_MAX) await this.flush(true);
      window = { startedAt: this.now(), written: 0, suppressed: 0, codes: new Map(), sample: safe };
      this.windows.set(windowKey, window);
    }
    if (window.written < AUDIT_VERBATIM_PER_WINDOW) {
      window.written += 1;
      return this.write(safe);
    }
    window.suppressed += 1;
    const code = entry.code ?? '-';
    window.codes.set(code, (window.codes.get(code) ?? 0) + 1);
  }

  /** Summarises windows that ended (or all of them), e.g. before the node stops. */
  async flush(all: boolean): Promise<void> {
    for (const [key, window] of [...this.windows]) {
      if (!all && this.now() - window.startedAt < AUDIT_WINDOW_MS) continue;
      this.windows.delete(key);
      await this.summarise(window);
    }
  }

  async close(): Promise<void> {
    clearInterval(this.timer);
    await this.flush(true);
  }

  private async summarise(window: Window): Promise<void> {
    if (window.suppressed === 0) return;
    const codes = [...window.codes].map(([code, count]) => `${code} ×${count}`).join(', ');
    const { kind, peer } = window.sample;
    await this.write({
      kind,
      code: 'repeated',
      detail: `${window.suppressed} more ${kind} entries like "${window.sample.detail.slice(0, 120)}" within a minute (${codes})`,
      ...(peer ? { peer } : {}),
    });
  }
}

/** Text as a log line or journal entry may hold it: control characters blanked, cut to `charsMax`. */
export function printable(text: string, charsMax: number): string {
  // eslint-disable-next-line no-control-regex
  const clean = text.replace(/[\u0000-\u001f\u007f]/g, ' ');
  return clean.length > charsMax ? `${clean.slice(0, charsMax)}…` : clean;
}

/** A detail as the journal keeps it (it may quote a peer). */
const cleanDetail = (detail: string) => printable(detail, AUDIT_DETAIL_CHARS_MAX);
