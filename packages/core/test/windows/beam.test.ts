// The late-data scenario of Beam's TestStream documentation, on Tributary:
// 5-minute tumbling windows, 5 minutes of allowed lateness, emit: updates.
import { describe, expect, it } from 'vitest';
import { stepsPipeline } from '../helpers.js';
import { batch, harness } from '../window-helpers.js';

const MIN = 60_000;

describe('late data (Beam TestStream scenario)', () => {
  it('on-time sum 6, final sum 15, and the three too-late records in the late output', async () => {
    const p = stepsPipeline(
      '  - window: { key: event.k, tumbling: 5m, allowedLateness: 5m, emit: updates, aggregate: { sum: sum(event.v) } }',
      'eventTime: event.t\n',
    );
    const h = harness(p);
    const at0 = (v: number) => ({ k: 'team', t: 0, v });
    await h.process(batch('s', [at0(1), at0(2), at0(3)], 1));
    const onTime = [...h.out];
    await h.process(batch('s', [], 4, { watermark: 6 * MIN })); // advanceWatermarkTo(6 min)
    await h.process(batch('s', [at0(4), at0(5)], 4)); // late, but within allowed lateness
    await h.process(batch('s', [], 6, { watermark: 20 * MIN })); // advanceWatermarkTo(20 min): closes
    await h.process(batch('s', [at0(-1), at0(-2), at0(-3)], 6)); // too late
    await h.flush();

    const sums = h.out.map((o) => (o as { sum: number }).sum);
    expect(onTime.map((o) => (o as { sum: number }).sum)).toEqual([6]);
    expect(sums).toEqual([6, 15, 15]); // on-time pane, late update, and the last one on close
    expect(
      h.out.every(
        (o) => (o as { windowStart: number }).windowStart === 0 && (o as { windowEnd: number }).windowEnd === 5 * MIN,
      ),
    ).toBe(true);
    expect(h.late().map((d) => (d.value as { v: number }).v)).toEqual([-1, -2, -3]);
    expect(h.late().map((d) => d.sequenceNumber)).toEqual(['6', '7', '8']);
  });

  it('with emit: final, the window is emitted exactly once, on close, with the late-but-allowed records', async () => {
    const p = stepsPipeline(
      '  - window: { key: event.k, tumbling: 5m, allowedLateness: 5m, aggregate: { sum: sum(event.v) } }',
      'eventTime: event.t\n',
    );
    const h = harness(p);
    const at0 = (v: number) => ({ k: 'team', t: 0, v });
    await h.process(batch('s', [at0(1), at0(2), at0(3)], 1));
    await h.process(batch('s', [], 4, { watermark: 6 * MIN }));
    await h.process(batch('s', [at0(4), at0(5)], 4));
    expect(h.out).toEqual([]);
    await h.process(batch('s', [], 6, { watermark: 20 * MIN }));
    await h.process(batch('s', [at0(-1), at0(-2), at0(-3)], 6));
    await h.flush();
    expect(h.out).toEqual([{ key: 'team', windowStart: 0, windowEnd: 5 * MIN, sum: 15 }]);
    expect(h.late()).toHaveLength(3);
  });
});
