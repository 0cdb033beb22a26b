import { describe, expect, it } from 'vitest';
import { faultsMain, makeSchedule, runFaults, type FaultRunResult } from '../gateways/faults/index.js';

/**
 * The fault suite run small: one seed, a short schedule with SIGKILLs, through the same
 * runFaults that `npm run faults` runs (the nodes' processes from the sources, via tsx).
 */
const SEED = 7;
const RUN_MS = 10_000;
const KILLS = 2;
/** Start (six stores opened at once), the short schedule, convergence: bounded well inside this. */
const TEST_LIMIT_MS = 400_000;

describe('the fault suite', () => {
  it('gives the same schedule for a seed, and another for another seed', () => {
    const servers = ['a', 'b', 'c'];
    const links = [['a', 'b'], ['b', 'c']] as const;
    const bounds = { runMs: 60_000, killsMax: 5 };
    expect(makeSchedule(3, servers, links, bounds)).toEqual(makeSchedule(3, servers, links, bounds));
    expect(makeSchedule(3, servers, links, bounds)).not.toEqual(makeSchedule(4, servers, links, bounds));
    const steps = makeSchedule(3, servers, links, bounds).steps;
    expect(steps.filter((step) => step.fault.kind === 'kill').length).toBeLessThanOrEqual(5);
    expect(steps.every((step) => step.atMs < bounds.runMs)).toBe(true);
    expect(makeSchedule(3, servers, links, bounds).endMs).toBeGreaterThanOrEqual(bounds.runMs);
  });

  it('refuses a bad command line, naming the option', async () => {
    const errors: string[] = [];
    expect(await faultsMain(['--seeds', '0'], () => undefined, (line) => errors.push(line))).toBe(64);
    expect(errors.join('\n')).toContain('--seeds must be a whole number from 1 to');
    expect(await faultsMain(['--kills', '-1'], () => undefined, (line) => errors.push(line))).toBe(64);
  });

  it(
    `holds every event exactly once on every member server through SIGKILLs, partitions and a slow peer (seed ${SEED})`,
    async () => {
      const lines: string[] = [];
      const result: FaultRunResult = await runFaults({ seed: SEED, runMs: RUN_MS, killsMax: KILLS, fixtures: 'fixtures/federation', keep: false, print: (line) => lines.push(line) });
      console.log(lines.filter((line) => !line.startsWith('  ')).slice(-3).join('\n'));
      const schedule = lines.filter((line) => /^ +\d+\. \+/.test(line));
      // A progress line per step, and the schedule it printed first is the one it ran.
      expect(result.steps).toBeGreaterThan(0);
      expect(schedule).toHaveLength(result.steps);
      expect(lines.filter((line) => line.includes(`step `) && line.includes(`/${result.steps}:`))).toHaveLength(result.steps);
      // The run did kill and restart, and checked what it claims: every chat, real traffic, every copy.
      expect(result.kills).toBeGreaterThan(0);
      expect(result.restarts).toBe(result.kills);
      expect(result.chats).toBe(5);
      expect(result.posted).toBeGreaterThan(50);
      // Each posted event (and each chat's creation) on each of its chat's member servers: at least two copies each.
      expect(result.copiesVerified).toBeGreaterThanOrEqual(2 * (result.posted + result.chats));
      expect(result.queuesVerified).toBeGreaterThan(0);
    },
    TEST_LIMIT_MS,
  );
});
