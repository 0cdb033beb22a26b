import { describe, expect, it } from 'vitest';
import type { AuditEntry } from '../store/index.js';
import { AUDIT_DETAIL_CHARS_MAX, AUDIT_VERBATIM_PER_WINDOW, AUDIT_WINDOW_MS, AuditJournal } from './audit.js';

describe('the audit journal under a flood', () => {
  it('writes the first entries of a minute per key, then one summary with the count per code', async () => {
    const written: AuditEntry[] = [];
    let now = 1_000_000;
    const journal = new AuditJournal(async (entry) => void written.push(entry), () => now);
    for (let i = 0; i < 100; i++) await journal.record({ kind: 'link-refused', code: i % 2 ? 'bad-proof' : 'protocol', detail: `refusal ${i}` }, '10.0.0.1');
    await journal.record({ kind: 'link-refused', code: 'bad-proof', detail: 'another source' }, '10.0.0.2');
    expect(AUDIT_VERBATIM_PER_WINDOW).toBe(3);
    expect(written.map((entry) => entry.detail)).toEqual(['refusal 0', 'refusal 1', 'refusal 2', 'another source']);

    now += AUDIT_WINDOW_MS;
    await journal.flush(false);
    const summary = written.at(-1)!;
    expect(summary.code).toBe('repeated');
    expect(summary.detail).toContain(`${100 - AUDIT_VERBATIM_PER_WINDOW} more link-refused`);
    expect(summary.detail).toMatch(/bad-proof ×49/);
    expect(summary.detail).toMatch(/protocol ×48/);
    // The next minute starts over with entries written as they come.
    await journal.record({ kind: 'link-refused', code: 'bad-proof', detail: 'next minute' }, '10.0.0.1');
    expect(written.at(-1)!.detail).toBe('next minute');
    await journal.close();
  });

  it('keeps details printable and short, whoever wrote them', async () => {
    const written: AuditEntry[] = [];
    const journal = new AuditJournal(async (entry) => void written.push(entry), Date.now);
    await journal.record({ kind: 'refused-by-peer', detail: `line\nbreak\u0000${'x'.repeat(1_000)}` });
    expect(written[0]!.detail).not.toMatch(/[\n\u0000]/);
    expect(written[0]!.detail.length).toBeLessThanOrEqual(AUDIT_DETAIL_CHARS_MAX + 1);
    await journal.close();
  });
});
