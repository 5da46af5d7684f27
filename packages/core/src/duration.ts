import { ConfigError } from './errors.js';

/** Durations in pipeline files: `500ms`, `30s`, `5m`, `1h`, `1d`, or a number of milliseconds. */
export type Duration = string | number;

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;

/** Milliseconds of a duration, or `undefined` when it is not one. */
export function parseDuration(d: Duration): number | undefined {
  if (typeof d === 'number') return Number.isFinite(d) && d >= 0 ? d : undefined;
  const m = PATTERN.exec(d.trim());
  if (!m) return undefined;
  return Math.round(Number(m[1]) * (UNITS[m[2] as string] as number));
}

export function durationMs(d: Duration): number {
  const ms = parseDuration(d);
  if (ms === undefined) throw new ConfigError(`Expected a duration such as 30s, 5m or 1h, got ${JSON.stringify(d)}`);
  return ms;
}
