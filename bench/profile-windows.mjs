import { compile, count, fileSource, MemorySink, pipeline } from '@tributary/core';

const keys = Number(process.argv[2] ?? 100000);
let seed = 11;
const rand = () => (seed = (seed * 16807) % 2147483647) / 2147483647;
const N = 400000;
const ev = [];
for (let i = 0; i < N; i++)
  ev.push({
    k: `k${Math.floor(rand() * keys)}`,
    t: 1_700_000_000_000 + i - (rand() < 0.05 ? Math.floor(rand() * 2000) : 0),
  });
const batches = [];
for (let i = 0; i < N; i += 10000)
  batches.push({
    shardId: 's',
    records: ev
      .slice(i, i + 10000)
      .map((value, j) => ({ value, partitionKey: 'k', sequenceNumber: String(i + j + 1), arrivalTime: 0 })),
  });
for (let r = 0; r < 3; r++) {
  const sink = new MemorySink();
  const c = compile(
    pipeline('w')
      .source(fileSource({ path: '-' }))
      .eventTime((e) => e.t)
      .window({ key: (e) => e.k, tumbling: 10000, outOfOrderness: 2000, aggregate: { n: count() } })
      .sink(sink)
      .build(),
    { deadLetter: new MemorySink() },
  );
  const t0 = performance.now();
  for (const b of batches) await c.process(b);
  await c.flush();
  console.error(keys, 'keys', Math.round((N / (performance.now() - t0)) * 1000), 'rec/s');
}
