/**
 * The worker's one-line live status on a terminal: shards held, records/s, and the largest
 * iterator age of a shard held, rewritten in place at most once a second:
 *
 *   orders w-1: 2 shards, 1840 records/s, 1.2 s behind
 *
 * Only on a TTY: on a pipe or a file (a container's log) nothing is written, the JSON log is
 * the record there. Log lines written through `logStream` clear the status line first and draw
 * it again after, so the two share standard error without tearing.
 */

/** The figures the status line shows, read at each redraw. */
export interface StatusSample {
  /** Shards (leases) held now. */
  shards: number;
  /** Records read so far (a running total; the rate is its change over the last interval). */
  recordsIn: number;
  /** The largest iterator age (ms behind the tip) of a shard held; absent before any read. */
  maxIteratorAgeMs?: number;
}

export interface StatusLineOptions {
  /** Where it is drawn; nothing is drawn unless `isTTY` is true. */
  stream: { write(text: string): unknown; isTTY?: boolean };
  /** What it shows before the figures (e.g. the pipeline's name and the worker id). */
  label: string;
  sample: () => StatusSample;
  /** The least time between two redraws (default and minimum 1000 ms). */
  intervalMs?: number;
  /** The clock in ms (tests); default Date.now. */
  now?: () => number;
}

export interface StatusLine {
  /** Whether the stream is a terminal (else every call does nothing). */
  readonly active: boolean;
  /** Redraws now unless the last redraw was less than the interval ago; whether it drew. */
  update(): boolean;
  /** Redraws every interval (a timer that does not keep the process alive) until `stop`. */
  start(): void;
  /** Stops the timer and clears the line. */
  stop(): void;
  /** A stream for log lines: the status line is cleared before each and drawn again after it. */
  readonly logStream: { write(line: string): unknown };
}

/** Erase the line the cursor is on and go to its start. */
const CLEAR = '\r\x1b[2K';

export function createStatusLine(options: StatusLineOptions): StatusLine {
  const { stream, label, sample } = options;
  const now = options.now ?? Date.now;
  const intervalMs = Math.max(1000, options.intervalMs ?? 1000);
  const active = stream.isTTY === true;
  let shown: string | undefined;
  let last: { at: number; recordsIn: number } | undefined;
  let timer: NodeJS.Timeout | undefined;

  const update = (): boolean => {
    if (!active) return false;
    const at = now();
    if (last !== undefined && at - last.at < intervalMs) return false;
    const s = sample();
    const rate =
      last === undefined || at === last.at ? undefined : ((s.recordsIn - last.recordsIn) * 1000) / (at - last.at);
    last = { at, recordsIn: s.recordsIn };
    shown = formatStatus(label, s, rate);
    stream.write(`${CLEAR}${shown}`);
    return true;
  };

  return {
    active,
    update,
    start() {
      if (!active || timer !== undefined) return;
      update();
      timer = setInterval(update, intervalMs);
      timer.unref();
    },
    stop() {
      if (timer !== undefined) clearInterval(timer);
      timer = undefined;
      if (shown !== undefined) stream.write(CLEAR);
      shown = undefined;
    },
    logStream: {
      write(line: string) {
        if (shown === undefined) return stream.write(line);
        return stream.write(`${CLEAR}${line}${line.endsWith('\n') ? '' : '\n'}${shown}`);
      },
    },
  };
}

/** The status text: `label: N shards, R records/s, A behind` (rate `…` before a second sample). */
export function formatStatus(label: string, s: StatusSample, recordsPerSecond: number | undefined): string {
  const shards = `${s.shards} shard${s.shards === 1 ? '' : 's'}`;
  const rate = recordsPerSecond === undefined ? '… records/s' : `${Math.round(recordsPerSecond)} records/s`;
  const age = s.maxIteratorAgeMs === undefined ? 'not read yet' : `${formatAge(s.maxIteratorAgeMs)} behind`;
  return `${label}: ${shards}, ${rate}, ${age}`;
}

function formatAge(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  if (ms < 3_600_000) return `${(ms / 60_000).toFixed(1)} min`;
  return `${(ms / 3_600_000).toFixed(1)} h`;
}
