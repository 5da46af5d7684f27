/** The range of a JavaScript Date (±100,000,000 days from 1970): event times outside it are not times. */
export const MAX_EVENT_TIME = 8.64e15;

/**
 * Event time as epoch ms from what an `eventTime` expression yields, or `undefined` if it is none
 * (not a number or ISO-8601 text, or outside the Date range ±8.64e15 ms).
 */
export function parseEventTime(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) && Math.abs(v) <= MAX_EVENT_TIME ? v : undefined;
  if (typeof v === 'string') {
    // ISO-8601 with a date part; Date.parse alone also accepts loose forms such as "1".
    if (!/^\d{4}-\d{2}-\d{2}/.test(v)) return undefined;
    const t = Date.parse(v);
    return Number.isNaN(t) ? undefined : t;
  }
  if (v instanceof Date) {
    const t = v.getTime();
    return Number.isNaN(t) ? undefined : t;
  }
  return undefined;
}
