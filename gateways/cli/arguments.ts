import { InvalidArgumentError } from 'commander';

/** An option's whole number from 1 to `max`, or a usage error that says so. */
export function positiveInt(max: number) {
  return (value: string): number => {
    const parsed = Number(value);
    if (!Number.isInteger(parsed) || parsed < 1 || parsed > max) throw new InvalidArgumentError(`must be a whole number from 1 to ${max}`);
    return parsed;
  };
}
