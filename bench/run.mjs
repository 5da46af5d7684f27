// `pnpm bench [name...] [--quick] [--runs N]`: runs the benchmarks, prints their tables, writes
// bench/results/<name>.json. Targets are ratios against a baseline measured in the same process,
// never absolute times.
//
// On a small shared machine a ratio moves by ±30% from one process to the next (JIT decisions,
// memory layout, neighbours), more than some targets leave room for. So the benchmarks whose
// targets sit that close (stateless, windows, lambda) run in several fresh processes (`--runs`,
// default 3 for those, 1 for the others) and are judged on the median of each measured ratio.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { median, table } from './lib.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['stateless', 'windows', 'state', 'sinks', 'lambda', 'worker'];
const args = process.argv.slice(2);
const runsAt = args.indexOf('--runs');
const runsArg = runsAt >= 0 ? Number(args[runsAt + 1]) : undefined;
if (runsArg !== undefined && !(Number.isInteger(runsArg) && runsArg >= 1)) {
  console.error('--runs needs a whole number >= 1');
  process.exit(64);
}
const wanted = args.filter((a, i) => !a.startsWith('-') && (runsAt < 0 || i !== runsAt + 1));
const quick = args.includes('--quick');
const names = wanted.length ? wanted : all;
const MANY = ['stateless', 'windows', 'lambda'];
mkdirSync(join(here, 'results'), { recursive: true });
const resultFile = (name) => join(here, 'results', `${name}.json`);

/** Runs one benchmark here and writes its summary. */
async function runHere(name) {
  const mod = await import(`./${name}.mjs`);
  // --quick shrinks the large benchmarks; the others are small already.
  const shrunk = {
    stateless: { records: 100_000, rounds: 3 },
    windows: { records: 100_000, rounds: 3 },
    worker: { records: 50_000, pacedSeconds: 10 },
  };
  const result = await mod.run(quick ? (shrunk[name] ?? {}) : {});
  console.log(result.text);
  writeFileSync(
    resultFile(name),
    `${JSON.stringify({ ...result.summary, node: process.version, date: new Date().toISOString() }, null, 2)}\n`,
  );
  return result.summary;
}

const meets = (c, v) =>
  c.target === undefined ||
  (c.op === '<=' ? v <= c.target : c.op === '<' ? v < c.target : c.op === '>=' ? v >= c.target : v > c.target);

/** Runs one benchmark in `runs` fresh processes; judges the median of each check. */
function runMany(name, runs) {
  const summaries = [];
  for (let i = 0; i < runs; i++) {
    // Exit status 1 is a run whose targets were missed: its numbers count all the same.
    const child = spawnSync(
      process.execPath,
      ['--expose-gc', join(here, 'run.mjs'), name, '--runs', '1', ...(quick ? ['--quick'] : [])],
      { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 64 * 1024 * 1024 },
    );
    if (child.status !== 0 && child.status !== 1)
      throw new Error(`${name} run ${i + 1} failed (${child.status ?? child.signal})`);
    const out = child.stdout;
    const lines = out.trim().split('\n');
    // The whole output of the first run; of the others, their verdict line.
    console.log(i === 0 ? lines.slice(2).join('\n') : `run ${i + 1}: ${lines[lines.length - 1]}`);
    if (i === 0) console.log('');
    summaries.push(JSON.parse(readFileSync(resultFile(name), 'utf8')));
  }
  const checks = (summaries[0].checks ?? []).map((c, j) => {
    const values = summaries.map((s) => s.checks[j].value);
    return { ...c, value: median(values), values };
  });
  const pass = checks.length > 0 ? checks.every((c) => meets(c, c.value)) : summaries.every((s) => s.pass);
  console.log(
    `\n${table(
      checks.map((c) => ({
        check: c.name,
        median: c.value.toFixed(2),
        runs: c.values.map((v) => v.toFixed(2)).join(' '),
        target: c.target === undefined ? '' : `${c.op} ${c.target}`,
        verdict: c.target === undefined ? '' : meets(c, c.value) ? 'met' : 'NOT MET',
      })),
      ['check', 'median', 'runs', 'target', 'verdict'],
    )}\n\nmedian over ${runs} processes: ${pass ? 'PASS' : 'FAIL'}`,
  );
  const summary = { ...summaries[0], checks, runs: summaries, pass };
  writeFileSync(
    resultFile(name),
    `${JSON.stringify({ ...summary, node: process.version, date: new Date().toISOString() }, null, 2)}\n`,
  );
  return summary;
}

let failed = false;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; available: ${all.join(', ')}`);
    process.exit(64);
  }
  console.log(`\n## ${name}\n`);
  const runs = runsArg ?? (MANY.includes(name) && !quick ? 3 : 1);
  const summary = runs === 1 ? await runHere(name) : runMany(name, runs);
  if (!summary.pass) failed = true;
}
process.exitCode = failed ? 1 : 0;
