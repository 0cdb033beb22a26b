/**
 * A seeded stream of decisions: mulberry32, 32 bits of state. Not for keys or nonces
 * (crypto/ makes those): for schedules and generators that a seed must replay exactly.
 */
export type Random = () => number;

export function prng(seed: number): Random {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4_294_967_296;
  };
}

/** One of `values`, drawn from `random`. */
export function pick<T>(random: Random, values: readonly T[]): T {
  if (values.length === 0) throw new RangeError('pick from no values');
  return values[Math.floor(random() * values.length)]!;
}

/** A whole number in [min, max], drawn from `random`. */
export function between(random: Random, min: number, max: number): number {
  return min + Math.floor(random() * (max - min + 1));
}
