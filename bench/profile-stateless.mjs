import { compile, fileSource, MemorySink, pipeline } from '@tributary/core';

const users = new Map();
for (let i = 0; i < 1000; i++) users.set(`u${i}`, { name: `User ${i}` });
const lines = Array.from({ length: 200000 }, (_, i) =>
  JSON.stringify({ type: i % 5 < 3 ? 'click' : 'view', userId: `u${i % 1100}`, amount: i % 100, ts: i, page: '/p' }),
);
const batches = [];
for (let i = 0; i < lines.length; i += 10000)
  batches.push({
    shardId: 's',
    records: lines
      .slice(i, i + 10000)
      .map((data, j) => ({ data, partitionKey: 'k', sequenceNumber: String(i + j), arrivalTime: 0 })),
  });
const lookup = {
  async get(keys) {
    const m = new Map();
    for (const k of keys) if (users.has(k)) m.set(k, users.get(k));
    return m;
  },
};
const sink = new MemorySink();
const c = compile(
  pipeline('p')
    .source(fileSource({ path: '-' }))
    .filter((e) => e.type === 'click')
    .map((e) => ({ user: e.userId, amount: e.amount, ts: e.ts }))
    .enrich({ lookup, key: (e) => e.user, as: 'profile' })
    .sink(sink)
    .build(),
  { deadLetter: new MemorySink() },
);
for (let r = 0; r < 10; r++) {
  sink.clear();
  for (const b of batches) await c.process(b);
}
