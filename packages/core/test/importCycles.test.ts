import { mkdirSync, mkdtempSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, relative, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

/** The static imports and re-exports (type-only ones too) of every `.ts` file under `dir`. */
function importGraph(dir: string): Map<string, string[]> {
  const files = readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.ts'));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const text = readFileSync(join(dir, file), 'utf8');
    const targets: string[] = [];
    // `import … from '…'`, `export … from '…'`, `import '…'`; not `declare module '…'` (an augmentation).
    const statement = /^\s*(?:import|export)\b[^;'"]*?(?:\bfrom\s*)?['"](\.[^'"]+)['"]/gm;
    for (const m of text.matchAll(statement)) {
      const target = relative(dir, resolve(dirname(join(dir, file)), (m[1] as string).replace(/\.js$/, '.ts')));
      targets.push(target);
    }
    graph.set(relative(dir, join(dir, file)), targets);
  }
  return graph;
}

/** The first import cycle found, as the files along it, or undefined. */
function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const done = new Set<string>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (file: string): string[] | undefined => {
    if (onStack.has(file)) return [...stack.slice(stack.indexOf(file)), file];
    if (done.has(file) || !graph.has(file)) return undefined;
    stack.push(file);
    onStack.add(file);
    for (const next of graph.get(file) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    onStack.delete(file);
    done.add(file);
    return undefined;
  };
  for (const file of graph.keys()) {
    const cycle = visit(file);
    if (cycle) return cycle;
  }
  return undefined;
}

describe('import graph of @tributary/core', () => {
  it('has no cycle (type imports included): a kind adds itself to the kind maps, spec.ts imports no kind', () => {
    const cycle = findCycle(importGraph(join(import.meta.dirname, '..', 'src')));
    expect(cycle?.join(' > ')).toBeUndefined();
  });

  it('the check finds a cycle through a type import and ignores module augmentations', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cycle-'));
    mkdirSync(join(dir, 'steps'));
    writeFileSync(join(dir, 'spec.ts'), "import type {\n  FilterSpec,\n} from './steps/filter.js';\nexport {};\n");
    writeFileSync(
      join(dir, 'steps', 'filter.ts'),
      "import type { StepSpec } from '../spec.js';\ndeclare module '../spec.js' { interface StepKinds { filter: string } }\n",
    );
    writeFileSync(join(dir, 'other.ts'), "declare module './spec.js' {}\nimport './steps/filter.js';\n");
    expect(new Set(findCycle(importGraph(dir)))).toEqual(new Set(['spec.ts', 'steps/filter.ts']));
    writeFileSync(join(dir, 'spec.ts'), 'export interface StepKinds {}\n');
    expect(findCycle(importGraph(dir))).toBeUndefined();
  });
});
