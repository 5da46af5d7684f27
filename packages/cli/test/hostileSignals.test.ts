// SIGINT/SIGTERM during `tributary run` and `tributary lambda-local` (issue 12): the batch in
// progress finishes, the outputs are closed with every line whole, the summary says the run was
// interrupted and where, and the exit status is 130/143; a second signal exits at once.
import { once } from 'node:events';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createStream, kinesisClient, putJson, startKinesalite } from '../../../test-support/emulators.js';
import { jsonLines, sizeOf, startCli, until } from './hostileSupport.js';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'trib-signals-'));
  await writeFile(
    join(dir, 'map.yaml'),
    `version: 1
name: signals
source: { file: { path: '-', batchSize: 500 } }
steps:
  - filter: event.i % 7 != 3
  - map: { i: event.i, pad: event.pad }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
  );
});

const line = (i: number) =>
  i % 1000 === 999 ? 'not json' : JSON.stringify({ i, pad: 'x'.repeat(40 + (i % 13)), nested: { i } });

/** Writes lines `from`… to the child's stdin as fast as it reads them, until `stop()`. */
function feed(stdin: NodeJS.WritableStream, from = 0) {
  let stopped = false;
  let next = from;
  const done = (async () => {
    while (!stopped) {
      let chunk = '';
      for (let k = 0; k < 2000; k++) chunk += `${line(next++)}\n`;
      if (!stdin.write(chunk)) await Promise.race([once(stdin, 'drain'), once(stdin, 'close')]);
      if ((stdin as { destroyed?: boolean }).destroyed) return;
    }
  })().catch(() => {});
  return {
    stop: async () => {
      stopped = true;
      await done;
    },
  };
}

/** The oracle: what the pipeline writes for input lines 1..n (line k holds record k - 1). */
function expectedUpTo(n: number) {
  const out: { i: number; pad: string }[] = [];
  const dead: number[] = [];
  for (let k = 1; k <= n; k++) {
    const i = k - 1;
    if (i % 1000 === 999) dead.push(k);
    else if (i % 7 !== 3) out.push({ i, pad: 'x'.repeat(40 + (i % 13)) });
  }
  return { out, dead };
}

describe('tributary run, interrupted', () => {
  for (const [sig, status] of [
    ['SIGINT', 130],
    ['SIGTERM', 143],
  ] as const) {
    it(`${sig} mid-run: exit ${status}, the summary marked interrupted, every output line whole`, async () => {
      const sub = await mkdtemp(join(dir, `${sig}-`));
      const cli = startCli(
        ['run', join(dir, 'map.yaml'), '--output', join(sub, 'out.jsonl'), '--dead-letter', join(sub, 'dead.jsonl')],
        { cwd: sub },
      );
      const input = feed(cli.child.stdin);
      // Records are flowing (the output has grown past a few batches): signal it mid-stream.
      await until(async () => (await sizeOf(join(sub, 'out.jsonl'))) > 200_000, 'output');
      cli.child.kill(sig);
      const { code, signal } = await cli.exited;
      await input.stop();
      expect({ code, signal }).toEqual({ code: status, signal: null });
      const lines = cli.stderr().trimEnd().split('\n');
      expect(lines[0]).toBe(
        `tributary: ${sig}: finishing the batch in progress and closing the outputs (again to exit now)`,
      );
      const m =
        /^signals: interrupted by (\w+) after line (\d+): ([\d,]+) records in, ([\d,]+) written, ([\d,]+) dead-lettered, ([\d,]+) filtered in [\d.]+ s \([\d,]+ records\/s\)$/.exec(
          lines[1] ?? '',
        );
      expect(m, cli.stderr()).not.toBeNull();
      expect(lines).toHaveLength(2);
      const [, by, lastLine, recordsIn, written, deadLettered] = m as RegExpExecArray;
      expect(by).toBe(sig);
      const n = Number(lastLine);
      expect(n).toBeGreaterThan(0); // the lines read when the signal came are handed over too
      // Every line of every output parses, and they hold exactly lines 1..n: nothing half-written.
      const out = await jsonLines(join(sub, 'out.jsonl'));
      const dead = (await jsonLines(join(sub, 'dead.jsonl'))) as { line: number }[];
      const want = expectedUpTo(n);
      expect(out).toEqual(want.out);
      expect(dead.map((d) => d.line)).toEqual(want.dead);
      expect(Number(recordsIn?.replaceAll(',', ''))).toBe(n);
      expect(Number(written?.replaceAll(',', ''))).toBe(want.out.length);
      expect(Number(deadLettered?.replaceAll(',', ''))).toBe(want.dead.length);
    });
  }

  describe('a second signal while it shuts down', () => {
    let server: Server;
    let url: string;
    beforeAll(async () => {
      // A sink endpoint that never answers: the batch in progress cannot finish.
      server = createServer(() => {});
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      url = `http://127.0.0.1:${(server.address() as { port: number }).port}/`;
    });
    afterAll(async () => {
      server.closeAllConnections();
      server.close();
    });

    it('exits at once with the status of the signal', async () => {
      const file = join(dir, 'stuck.yaml');
      await writeFile(
        file,
        `version: 1
name: stuck
source: { file: { path: '-', batchSize: 10 } }
steps:
  - sink: { http: { url: '${url}', timeout: 600000 } }
`,
      );
      const cli = startCli(['run', file]);
      cli.child.stdin.write(`${Array.from({ length: 10 }, (_, i) => line(i)).join('\n')}\n`);
      await once(server, 'request'); // the first batch is being delivered, and will not be acknowledged
      cli.child.kill('SIGINT');
      await until(() => cli.stderr().includes('finishing the batch in progress'), 'the first notice');
      cli.child.kill('SIGINT');
      const { code, signal } = await cli.exited;
      expect({ code, signal }).toEqual({ code: 130, signal: null });
      expect(cli.stderr()).toContain('tributary: SIGINT again: exiting now (outputs may end in a partial line)\n');
    });
  });
});

describe('tributary lambda-local, interrupted', () => {
  let kinesis: { endpoint: string; close: () => Promise<void> };
  beforeAll(async () => {
    kinesis = await startKinesalite();
    const client = kinesisClient(kinesis.endpoint);
    await createStream(client, 'signals');
    const values = Array.from({ length: 3000 }, (_, i) => ({ i, pad: 'x'.repeat(40) }));
    await putJson(client, 'signals', values, (v) => ({ partitionKey: `p${v.i % 5}` }));
    client.destroy();
  }, 60_000);
  afterAll(async () => {
    await kinesis?.close();
  });

  it('SIGINT: the invocation in flight finishes, exit 130, the summary marked interrupted, lines whole', async () => {
    const sub = await mkdtemp(join(dir, 'lambda-'));
    const file = join(sub, 'lambda.yaml');
    await writeFile(
      file,
      `version: 1
name: local-signals
source: { file: { path: unused.jsonl } }
steps:
  - map: { i: event.i, pad: event.pad }
  - sink: { file: { path: out.jsonl } }
deadLetter: { file: { path: dead.jsonl } }
`,
    );
    // One record per invocation: 3,000 invocations, far more than run before the signal.
    const cli = startCli([
      'lambda-local',
      file,
      '--stream',
      'signals',
      '--endpoint',
      kinesis.endpoint,
      '--batch-size',
      '1',
    ]);
    await until(async () => (await sizeOf(join(sub, 'out.jsonl'))) > 2_000, 'output');
    cli.child.kill('SIGINT');
    const { code, signal } = await cli.exited;
    expect({ code, signal }).toEqual({ code: 130, signal: null });
    const summary = cli.stderr().trimEnd().split('\n').at(-1) ?? '';
    const m =
      /^local-signals: interrupted by SIGINT: (\d+) invocations, (\d+) records in \(each once, retries not counted\), (\d+) written, 0 dead-lettered, 0 sent to the on-failure destination$/.exec(
        summary,
      );
    expect(m, cli.stderr()).not.toBeNull();
    const out = (await jsonLines(join(sub, 'out.jsonl'))) as { i: number }[];
    expect(out.length).toBe(Number(m?.[3]));
    expect(out.length).toBeLessThan(3000);
    expect(out.map((o) => o.i)).toEqual(out.map((_, k) => k)); // in stream order, the first n records
  });
});
