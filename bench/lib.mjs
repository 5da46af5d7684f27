// Shared helpers for benchmarks: interleaved rounds, medians, a printed table.

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * Runs every variant `rounds` times, interleaved so machine noise hits all of them alike. A full
 * collection (when node runs with --expose-gc) precedes each run, so no run pays for the garbage
 * of the one before.
 */
export async function compare(variants, { rounds = 5, warmup = 1 } = {}) {
  const times = Object.fromEntries(variants.map((v) => [v.name, []]));
  for (let r = 0; r < warmup + rounds; r++) {
    for (const v of variants) {
      globalThis.gc?.();
      const t0 = performance.now();
      const check = await v.run();
      const ms = performance.now() - t0;
      if (process.env.BENCH_TRACE) console.error(`${v.name}: ${ms.toFixed(0)} ms`);
      if (r >= warmup) times[v.name].push(ms);
      v.lastCheck = check;
    }
  }
  return variants.map((v) => ({ name: v.name, ms: median(times[v.name]), check: v.lastCheck }));
}

export function table(rows, columns) {
  const widths = columns.map((c) => Math.max(c.length, ...rows.map((r) => String(r[c]).length)));
  const line = (cells) => cells.map((c, i) => String(c).padEnd(widths[i])).join('  ');
  return [
    line(columns),
    line(widths.map((w) => '-'.repeat(w))),
    ...rows.map((r) => line(columns.map((c) => r[c]))),
  ].join('\n');
}

/** A seeded generator of numbers in [0, 1) (Park–Miller), so every run sees the same input. */
export function random(seed) {
  let s = seed;
  return () => {
    s = (s * 16807) % 2147483647;
    return s / 2147483647;
  };
}

export const fmt = (n) => Math.round(n).toLocaleString('en-US');
