/** Event time as epoch ms from what an `eventTime` expression yields, or `undefined` if it is none. */
export function parseEventTime(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isFinite(v) ? v : undefined;
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
