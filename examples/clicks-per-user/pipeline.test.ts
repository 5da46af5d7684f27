// Runs the demo pipeline through the CLI and checks every output against ground truth
// recomputed here, independently, from events.jsonl and users.json.
import { cp, mkdtemp, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { main } from '@tributary/cli';
import { compile, runPipeline } from '@tributary/core';
import { expect, it } from 'vitest';

const here = import.meta.dirname;
const silent = { out: { write: () => true }, err: { write: () => true } } as never;
const readJsonLines = async (f: string) =>
  (await readFile(f, 'utf8'))
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l));

/** A copy of the example's inputs in a temporary directory (outputs go to its out/). */
async function copyOfExample(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'trib-example-'));
  for (const f of ['pipeline.yaml', 'events.jsonl', 'users.json', 'handlers.js']) await cp(join(here, f), join(dir, f));
  return dir;
}
const OUTPUTS = ['clicks.jsonl', 'big-purchases.jsonl', 'clicks-per-user.jsonl', 'dead-letter.jsonl'];

it('clicks-per-user matches a recomputation from its input', async () => {
  const dir = await copyOfExample();
  expect(await main(['run', join(dir, 'pipeline.yaml')], silent)).toBe(0);

  // Ground truth.
  const users = new Map(
    (JSON.parse(await readFile(join(here, 'users.json'), 'utf8')) as { id: string }[]).map((u) => [u.id, u]),
  );
  const lines = (await readFile(join(here, 'events.jsonl'), 'utf8')).split('\n');
  const clicks: Record<string, unknown>[] = [];
  const big: unknown[] = [];
  const dead: [number, string][] = [];
  const times: number[] = [];
  lines.forEach((line, i) => {
    if (line.trim() === '') return;
    let e: Record<string, unknown>;
    try {
      e = JSON.parse(line);
    } catch {
      dead.push([i + 1, 'decode']);
      return;
    }
    const okTs = typeof e.ts === 'string' && !Number.isNaN(Date.parse(e.ts));
    const okAmount = e.amount === undefined || typeof e.amount === 'number';
    const okPage = e.page === undefined || typeof e.page === 'string';
    if (typeof e.type !== 'string' || typeof e.userId !== 'string' || !okTs || !okAmount || !okPage) {
      dead.push([i + 1, 'schema']);
      return;
    }
    if (e.type !== 'click') return;
    if (typeof e.userAgent === 'string' && /bot|crawler|spider/i.test(e.userAgent)) return;
    const rec = { user: e.userId, amount: e.amount ?? 0, ts: e.ts, page: e.page };
    const profile = users.get(e.userId);
    if (!profile) {
      dead.push([i + 1, 'missing-lookup']);
      return;
    }
    const out = { ...rec, profile };
    (rec.amount as number) > 100 ? big.push(out) : clicks.push(out);
    if ((rec.amount as number) <= 100) times.push(Date.parse(e.ts as string));
  });

  expect(await readJsonLines(join(dir, 'out', 'clicks.jsonl'))).toEqual(clicks);
  expect(await readJsonLines(join(dir, 'out', 'big-purchases.jsonl'))).toEqual(big);
  const dl = (await readJsonLines(join(dir, 'out', 'dead-letter.jsonl'))) as { line: number; reason: string }[];
  expect(dl.map((d) => [d.line, d.reason]).sort((a, b) => (a[0] as number) - (b[0] as number))).toEqual(dead);
  // Per user per minute, recomputed from the clicks (event time = the input's ts).
  const perMinute = new Map<
    string,
    {
      key: string;
      windowStart: number;
      windowEnd: number;
      clicks: number;
      revenue: number;
      pages: Set<string>;
      plan: string;
    }
  >();
  clicks.forEach((c, i) => {
    const start = Math.floor((times[i] as number) / 60_000) * 60_000;
    const id = `${c.user}/${start}`;
    const w = perMinute.get(id) ?? {
      key: c.user as string,
      windowStart: start,
      windowEnd: start + 60_000,
      clicks: 0,
      revenue: 0,
      pages: new Set(),
      plan: '',
    };
    if (w.clicks === 0) w.plan = (c.profile as { plan: string }).plan;
    w.clicks++;
    w.revenue += c.amount as number;
    w.pages.add(c.page as string);
    perMinute.set(id, w);
  });
  const windows = (await readJsonLines(join(dir, 'out', 'clicks-per-user.jsonl'))) as Record<string, unknown>[];
  const order = (a: Record<string, unknown>, b: Record<string, unknown>) =>
    String(a.key).localeCompare(String(b.key)) || (a.windowStart as number) - (b.windowStart as number);
  expect(windows.map((w) => ({ ...w, revenue: Math.round((w.revenue as number) * 100) })).sort(order)).toEqual(
    [...perMinute.values()]
      .map((w) => ({ ...w, revenue: Math.round(w.revenue * 100), pages: w.pages.size }))
      .sort(order),
  );
  // The bundled data exercises every path.
  expect(clicks.length).toBeGreaterThan(100);
  expect(big.length).toBeGreaterThan(10);
  expect(new Set(dead.map((d) => d[1]))).toEqual(new Set(['decode', 'schema', 'missing-lookup']));
});

it('pipeline.ts (the typed builder) writes exactly what pipeline.yaml writes', async () => {
  const { clicksPerUser } = await import('./pipeline.js');
  const fromYaml = await copyOfExample();
  expect(await main(['run', join(fromYaml, 'pipeline.yaml')], silent)).toBe(0);
  const fromTs = await copyOfExample();
  await runPipeline(compile(clicksPerUser(fromTs)));
  for (const f of OUTPUTS) {
    // Dead letters carry the time they were written; everything else must be identical.
    const read = async (dir: string) =>
      (await readJsonLines(join(dir, 'out', f))).map(({ time: _time, ...rest }: Record<string, unknown>) => rest);
    const expected = await read(fromYaml);
    expect(expected.length).toBeGreaterThan(0);
    expect(await read(fromTs)).toEqual(expected);
  }
});

it('README.md shows pipeline.ts as it is', async () => {
  const readme = await readFile(join(here, '..', '..', 'README.md'), 'utf8');
  const source = await readFile(join(here, 'pipeline.ts'), 'utf8');
  expect(readme).toContain(`\`\`\`ts\n${source}\`\`\``);
});
