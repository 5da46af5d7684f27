// Runs an example: `pnpm example <name>` (after `pnpm build`).
// Prints the pipeline graph, runs it with `tributary run`, then shows what each output holds.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../packages/cli/dist/index.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const examples = join(root, 'examples');
const name = process.argv[2];
const available = readdirSync(examples).filter((d) => existsSync(join(examples, d, 'pipeline.yaml')));
if (!name || !available.includes(name)) {
  console.error(`usage: pnpm example <name>\navailable: ${available.join(', ')}`);
  process.exit(name ? 1 : 64);
}
const dir = join(examples, name);
const pipeline = join(dir, 'pipeline.yaml');
const custom = join(dir, 'run.mjs');
if (existsSync(custom)) {
  await import(custom);
} else {
  console.log(`\n== ${relative(root, pipeline)}\n`);
  await main(['describe', pipeline]);
  console.log('');
  const code = await main(['run', pipeline]);
  if (code !== 0) process.exit(code);
  const out = join(dir, 'out');
  if (existsSync(out)) {
    for (const f of readdirSync(out).sort()) {
      const file = join(out, f);
      if (!statSync(file).isFile()) continue;
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
      console.log(`\n== ${relative(root, file)} (${lines.length} records)`);
      for (const l of lines.slice(0, 3)) console.log(`  ${l.length > 160 ? `${l.slice(0, 157)}...` : l}`);
      if (lines.length > 3) console.log('  ...');
    }
  }
}
