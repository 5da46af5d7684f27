// The late-data scenario of Beam's TestStream documentation, on Tributary, as a timeline:
// 5-minute tumbling windows, 5 minutes of allowed lateness, emit: updates (and final).
import { describe, it } from 'vitest';
import { type TimelineRecord, timeline } from '../timeline.js';

const window = { key: 'event.k', tumbling: '5m', allowedLateness: '5m', aggregate: { sum: 'sum(event.v)' } };
const team = (v: number) => ({ k: 'team', v });
/** The three records that come after the window closed, as the late output has them. */
const tooLate = [-1, -2, -3].map((v): TimelineRecord => ['s', 0, team(v)]);

describe('late data (Beam TestStream scenario)', () => {
  it('on-time sum 6, final sum 15, and the three too-late records in the late output', async () => {
    const pane = (sum: number) => ({ key: 'team', start: '00:00', end: '00:05', sum });
    await timeline({ window: { ...window, emit: 'updates' } })
      .at('s', 0, team(1))
      .at('s', 0, team(2))
      .at('s', 0, team(3))
      .expectWindows([pane(6)]) // the on-time pane
      .watermark('s', '00:06') // advanceWatermarkTo(6 min)
      .at('s', 0, team(4)) // late, but within the allowed lateness
      .at('s', 0, team(5))
      .expectWindows([pane(15)]) // the late update
      .watermark('s', '00:20') // advanceWatermarkTo(20 min): closes
      .expectWindows([pane(15)]) // the last pane, on close
      .at('s', 0, team(-1)) // too late
      .at('s', 0, team(-2))
      .at('s', 0, team(-3))
      .expectLate(tooLate)
      .end()
      .expectWindows([])
      .run();
  });

  it('with emit: final, the window is emitted exactly once, on close, with the late-but-allowed records', async () => {
    await timeline({ window })
      .at('s', 0, team(1))
      .at('s', 0, team(2))
      .at('s', 0, team(3))
      .watermark('s', '00:06')
      .at('s', 0, team(4))
      .at('s', 0, team(5))
      .expectWindows([])
      .watermark('s', '00:20')
      .expectWindows([{ key: 'team', start: '00:00', end: '00:05', sum: 15 }])
      .at('s', 0, team(-1))
      .at('s', 0, team(-2))
      .at('s', 0, team(-3))
      .expectLate(tooLate)
      .end()
      .expectWindows([])
      .run();
  });
});
