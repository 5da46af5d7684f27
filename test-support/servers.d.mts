export function startDynalite(): Promise<{ endpoint: string; close: () => Promise<void> }>;

export interface RedisServer {
  url: string;
  port: number;
  /** Kills the server at once (SIGKILL: no shutdown save). */
  kill(): Promise<void>;
  /** Starts it again on the same port and directory (it reloads its AOF). */
  start(): Promise<void>;
  close(): Promise<void>;
}

/** A redis-server on a free loopback port; AOF with fsync on every write, so acknowledged writes survive a kill. */
export function startRedis(): Promise<RedisServer>;

export function startKinesalite(): Promise<{ endpoint: string; close: () => Promise<void> }>;

/** An S3-compatible server (s3rver) on a free loopback port (credentials: any). */
export function startS3(): Promise<{ endpoint: string; close: () => Promise<void> }>;
