import { count, countDistinct, fileSink, fileSource, first, pipeline, staticLookup, sum } from '@tributary/core';
import { notBot } from './handlers.js';

type Click = { type: string; userId: string; ts: string; amount?: number; page: string; userAgent?: string };
type Profile = { id: string; name: string; country: string; plan: string };

/** pipeline.yaml, written with the typed builder: the record type is inferred through every step. */
export function clicksPerUser(baseDir = import.meta.dirname) {
  return pipeline('clicks-per-user')
    .source(fileSource<Click>({ path: 'events.jsonl' }))
    .fields({ type: 'string', userId: 'string', ts: 'timestamp', amount: 'number?', page: 'string?' })
    .eventTime((e) => e.ts)
    .filter((e) => e.type === 'click')
    .filter(notBot)
    .map((e) => ({ user: e.userId, amount: e.amount ?? 0, ts: e.ts, page: e.page }))
    .enrich({
      lookup: staticLookup<Profile>({ path: 'users.json' }),
      key: (e) => e.user,
      as: 'profile',
      onMissing: 'dead-letter',
    })
    .keyBy((e) => e.user)
    .branch([
      {
        name: 'big-purchases',
        when: (e) => e.amount > 100,
        steps: (b) => b.sink(fileSink({ path: 'out/big-purchases.jsonl' })),
      },
    ])
    .sink(fileSink({ path: 'out/clicks.jsonl' }))
    .window({
      tumbling: '1m',
      outOfOrderness: '5s',
      aggregate: {
        clicks: count(),
        revenue: sum((e) => e.amount),
        pages: countDistinct((e) => e.page),
        plan: first((e) => e.profile?.plan),
      },
    })
    .sink(fileSink({ path: 'out/clicks-per-user.jsonl' })) // { key, windowStart, windowEnd, clicks, revenue, pages, plan }
    .deadLetter(fileSink({ path: 'out/dead-letter.jsonl' }))
    .build({ baseDir });
}
