/**
 * The worker's log: one JSON object per line (on standard error by default), so a log shipper
 * (CloudWatch, Loki, Datadog) takes each line as one event:
 *
 *   {"time":"2026-12-02T15:04:05.123Z","level":"info","msg":"lease taken","workerId":"w-1","shardId":"shardId-000000000001","fields":{"checkpoint":"TRIM_HORIZON"}}
 *
 * `shardId` is there for a shard's lines (`forShard`, or a `shardId` among the fields), `fields`
 * when a line has any. The lowest level written
 * is `TRIBUTARY_LOG_LEVEL` (debug, info, warn, error, silent; default info).
 */
import { ConfigError } from '@tributary/core/spi';

export const LOG_LEVELS = ['debug', 'info', 'warn', 'error'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
/** A threshold: a level, or `silent` (nothing is written). */
export type LogThreshold = LogLevel | 'silent';

export type LogFields = Record<string, unknown>;

export interface Logger {
  debug(msg: string, fields?: LogFields): void;
  info(msg: string, fields?: LogFields): void;
  warn(msg: string, fields?: LogFields): void;
  error(msg: string, fields?: LogFields): void;
  /** Whether a line of `level` is written. */
  enabled(level: LogLevel): boolean;
  /** The same log with `shardId` on every line. */
  forShard(shardId: string): Logger;
}

export interface LoggerOptions {
  workerId: string;
  /** Where the lines go (default process.stderr). */
  stream?: { write(line: string): unknown };
  /** The lowest level written (default: TRIBUTARY_LOG_LEVEL of `env`, else info). */
  level?: LogThreshold;
  /** Where TRIBUTARY_LOG_LEVEL is read (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** The clock (tests). */
  now?: () => Date;
}

const RANK: Record<LogThreshold, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

/** The threshold named by `text` (case-insensitive), or the message saying why it is refused. */
export function parseLogLevel(text: string): LogThreshold | string {
  const level = text.trim().toLowerCase();
  if (level in RANK) return level as LogThreshold;
  return `Expected \`TRIBUTARY_LOG_LEVEL\` to be debug, info, warn, error or silent, got ${JSON.stringify(text)}`;
}

/** A JSON-lines log; throws a ConfigError when TRIBUTARY_LOG_LEVEL names no level. */
export function createLogger(options: LoggerOptions): Logger {
  const stream = options.stream ?? process.stderr;
  const now = options.now ?? (() => new Date());
  let threshold: LogThreshold = options.level ?? 'info';
  if (options.level === undefined) {
    const text = (options.env ?? process.env).TRIBUTARY_LOG_LEVEL;
    if (text !== undefined && text !== '') {
      const parsed = parseLogLevel(text);
      if (!(parsed in RANK)) throw new ConfigError(parsed);
      threshold = parsed as LogThreshold;
    }
  }
  const min = RANK[threshold];
  const make = (shardId: string | undefined): Logger => {
    const write = (level: LogLevel, msg: string, fields?: LogFields) => {
      if (RANK[level] < min) return;
      const line: Record<string, unknown> = { time: now().toISOString(), level, msg, workerId: options.workerId };
      // A shard named in the fields (`{ shardId }`, as the worker's parts pass it) is the line's shard.
      let rest = fields;
      let shard = shardId;
      if (fields !== undefined && typeof fields.shardId === 'string') {
        const { shardId: named, ...others } = fields;
        shard ??= named as string;
        rest = others;
      }
      if (shard !== undefined) line.shardId = shard;
      if (rest !== undefined && Object.keys(rest).length > 0) line.fields = rest;
      stream.write(`${stringify(line)}\n`);
    };
    return {
      debug: (msg, fields) => write('debug', msg, fields),
      info: (msg, fields) => write('info', msg, fields),
      warn: (msg, fields) => write('warn', msg, fields),
      error: (msg, fields) => write('error', msg, fields),
      enabled: (level) => RANK[level] >= min,
      forShard: (id) => make(id),
    };
  };
  return make(undefined);
}

/**
 * JSON of a log line that never throws and stays one line: errors become `{ name, message,
 * code? }`, bigints strings, and a cycle `"[cycle]"`.
 */
function stringify(line: Record<string, unknown>): string {
  const seen = new WeakSet<object>();
  return JSON.stringify(line, (_key, value: unknown) => {
    if (typeof value === 'bigint') return value.toString();
    if (value instanceof Error) {
      const code = (value as { code?: unknown }).code;
      return { name: value.name, message: value.message, ...(code === undefined ? {} : { code }) };
    }
    if (typeof value === 'object' && value !== null) {
      if (seen.has(value)) return '[cycle]';
      seen.add(value);
    }
    return value;
  });
}

/**
 * A log taking entries as objects (`{ level?, msg, shardId?, ...fields }`, as the worker's parts
 * report what they absorbed) or as text, written through `logger`: the level defaults to info,
 * an unknown level is written as info with the level given kept in `fields.level`.
 */
export function entryLog(logger: Logger): (entry: Record<string, unknown> | string) => void {
  return (entry) => {
    if (typeof entry === 'string') {
      logger.info(entry);
      return;
    }
    const { level, msg, message, shardId, ...fields } = entry;
    const known = typeof level === 'string' && (LOG_LEVELS as readonly string[]).includes(level);
    if (level !== undefined && !known) fields.level = level;
    const text =
      typeof msg === 'string' ? msg : typeof message === 'string' ? message : JSON.stringify(msg ?? message ?? '');
    const target = typeof shardId === 'string' ? logger.forShard(shardId) : logger;
    target[known ? (level as LogLevel) : 'info'](text, fields);
  };
}
