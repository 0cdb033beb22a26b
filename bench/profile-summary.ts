/**
 * Where each server process of a bench run spent its time, from the V8 CPU profiles that
 * `BENCH_CPU_PROFILE_DIR=dir npm run bench` writes: self time per part (PGlite's
 * WebAssembly, its synchronous fsync, each package, each folder of ours, GC, idle), as a
 * share of the process's run. `node dist/bench/profile-summary.js dir [parts]`.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

interface CpuProfile {
  nodes: Array<{ id: number; callFrame: { functionName: string; url: string } }>;
  samples: number[];
  timeDeltas: number[];
}

/** The part a sampled frame belongs to. */
function partOf({ functionName, url }: { functionName: string; url: string }): string {
  if (!url) return functionName.startsWith('(') ? functionName : `native ${functionName}`;
  if (url.startsWith('wasm')) return 'WebAssembly (PGlite)';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (pkg) return `package ${pkg[1]}`;
  if (url.startsWith('node:')) return `node:${url.slice(5).split('/')[0]}`;
  const ours = /dist\/([^/]+)\//.exec(url);
  return ours ? `trellis ${ours[1]}/` : url;
}

function summary(profile: CpuProfile): { totalMs: number; parts: Array<[string, number]> } {
  const frames = new Map(profile.nodes.map((node) => [node.id, node.callFrame]));
  const parts = new Map<string, number>();
  let total = 0;
  profile.samples.forEach((id, index) => {
    const micros = profile.timeDeltas[index] ?? 0;
    total += micros;
    const part = partOf(frames.get(id)!);
    parts.set(part, (parts.get(part) ?? 0) + micros);
  });
  return { totalMs: total / 1000, parts: [...parts.entries()].sort((a, b) => b[1] - a[1]).map(([part, micros]) => [part, micros / total]) };
}

function main(): void {
  const [dir, shown = '12'] = process.argv.slice(2);
  if (!dir || !Number.isInteger(Number(shown)) || Number(shown) < 1) {
    console.error('usage: node dist/bench/profile-summary.js <BENCH_CPU_PROFILE_DIR> [parts to show, default 12]');
    process.exit(2);
  }
  const files = readdirSync(dir).filter((file) => file.endsWith('.cpuprofile')).sort();
  if (files.length === 0) {
    console.error(`no .cpuprofile files in ${dir}: run BENCH_CPU_PROFILE_DIR=${dir} npm run bench first`);
    process.exit(1);
  }
  for (const file of files) {
    const { totalMs, parts } = summary(JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile);
    console.log(`${file}: ${(totalMs / 1000).toFixed(1)} s sampled`);
    for (const [part, share] of parts.slice(0, Number(shown))) console.log(`  ${(100 * share).toFixed(1).padStart(5)}%  ${part}`);
  }
}

main();
