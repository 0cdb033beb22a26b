import { readFileSync } from 'node:fs';

/** Linux reports /proc/stat in USER_HZ ticks, 100 a second on every platform Node runs on. */
const PROC_STAT_TICK_MS = 10;

/** CPU time this process has used so far (user and system), in ms. */
export function cpuMs(): number {
  const { user, system } = process.cpuUsage();
  return (user + system) / 1000;
}

/**
 * CPU time the whole machine has spent busy so far (all cores, all processes), in ms,
 * from /proc/stat; undefined where there is none. Less our own, it tells whether other
 * work shared the cores while the bench ran.
 */
export function machineBusyMs(): number | undefined {
  try {
    const [, user, nice, system, , , irq, softirq, steal] = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).map(Number);
    return [user, nice, system, irq, softirq, steal].reduce<number>((sum, ticks) => sum + (ticks ?? 0), 0) * PROC_STAT_TICK_MS;
  } catch {
    return undefined;
  }
}
