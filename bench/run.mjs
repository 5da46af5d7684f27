// `pnpm bench [name...]`: runs the benchmarks, prints their tables, writes bench/results/<name>.json.
// Targets are ratios against a baseline measured in the same process, never absolute times.
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const all = ['stateless', 'windows', 'state', 'sinks', 'lambda'];
const wanted = process.argv.slice(2).filter((a) => !a.startsWith('-'));
const quick = process.argv.includes('--quick');
const names = wanted.length ? wanted : all;
mkdirSync(join(here, 'results'), { recursive: true });
let failed = false;
for (const name of names) {
  if (!all.includes(name)) {
    console.error(`unknown benchmark ${name}; available: ${all.join(', ')}`);
    process.exit(64);
  }
  const mod = await import(`./${name}.mjs`);
  console.log(`\n## ${name}\n`);
  // --quick shrinks the two large benchmarks; the others are small already.
  const shrink = quick && (name === 'stateless' || name === 'windows');
  const result = await mod.run(shrink ? { records: 100_000, rounds: 3 } : {});
  console.log(result.text);
  writeFileSync(
    join(here, 'results', `${name}.json`),
    `${JSON.stringify({ ...result.summary, node: process.version, date: new Date().toISOString() }, null, 2)}\n`,
  );
  if (!result.summary.pass) failed = true;
}
process.exitCode = failed ? 1 : 0;
