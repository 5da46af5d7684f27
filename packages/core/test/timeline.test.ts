// The timeline helper of the window tests holds a test to what it states: a window, a late record
// or a dead letter no expectation named fails the run, as does a wrong window; times read as clock
// text or durations.
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from './helpers.js';
import { ms, timeline } from './timeline.js';

const counted = stepsPipeline(
  '  - window: { key: event.k, tumbling: 1m, aggregate: { n: count() } }\n',
  'eventTime: event.t\n',
);

describe('timeline', () => {
  it('reads times as milliseconds, clock text (hh:mm, hh:mm:ss, hh:mm:ss.mmm, negative) or durations', () => {
    expect([ms(5), ms('00:01'), ms('01:00:00'), ms('00:00:01.001'), ms('-00:00:09'), ms('20s'), ms('1m')]).toEqual([
      5, 60_000, 3_600_000, 1001, -9000, 20_000, 60_000,
    ]);
    expect(() => ms('1:2')).toThrow(/hh:mm/);
  });

  it('fails on a window no expectation stated, and on a wrong one', async () => {
    await expect(timeline(counted).at('s', 1, { k: 'a' }).end().run()).rejects.toThrow(/windows no expectation stated/);
    await expect(
      timeline(counted)
        .at('s', 1, { k: 'a' })
        .end()
        .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 2 }])
        .run(),
    ).rejects.toThrow();
  });

  it('fails on a late record no expectation stated', async () => {
    const late = timeline(counted).at('s', '00:05:00', { k: 'a' }).batch().at('s', 1, { k: 'a' });
    await expect(late.run()).rejects.toThrow(/late records no expectation stated/);
  });

  it('fails on a dead letter no expectation stated', async () => {
    const dead = timeline(counted).at('s', 1, { k: { not: 'a key' } });
    await expect(dead.run()).rejects.toThrow(/dead letters no expectation stated/);
  });

  it('redelivers records with their own sequence numbers (a record the window step refuses is dead-lettered each time)', async () => {
    await timeline(counted)
      .at('s', 1, { k: 'a' })
      .at('s', 2, { k: { not: 'a key' } })
      .batch()
      .redeliver('s', 2)
      .expectDeadLetters([
        ['s', 2, { k: { not: 'a key' } }, { reason: 'expression' }],
        ['s', 2, { k: { not: 'a key' } }, { reason: 'expression' }],
      ])
      .end()
      .expectWindows([{ key: 'a', start: '00:00', end: '00:01', n: 1 }])
      .run();
  });
});
