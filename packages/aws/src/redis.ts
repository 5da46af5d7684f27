/**
 * Connecting to Redis on ElastiCache (or any Redis served over TLS with an AUTH token): the
 * `tls`, `authTokenEnv` and `authTokenSecret` fields the Redis state store and the Redis sink
 * share, and the ioredis options they make.
 *
 * - TLS: a `rediss://` URL (ElastiCache with in-transit encryption) turns it on; `tls` sets the
 *   CA to trust (a PEM file, or the PEM text), whether an unverified server is refused (default
 *   yes) and the name its certificate must carry. ElastiCache's certificates chain to CAs Node
 *   trusts already: `ca` is for servers with a private CA.
 * - AUTH: a token from an environment variable (`authTokenEnv`), from a Secrets Manager secret
 *   (`authTokenSecret`: read once, before the first command, so a Lambda function reads it once
 *   per cold start), or in the URL (`rediss://:token@host:6379`).
 *
 * The token is never part of a message, a summary or an error.
 */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import Type, { type Static } from 'typebox';
import type { AwsClientOptions } from './config.js';
import { RedisConnectionError } from './errors.js';

export const redisTlsSchema = Type.Object(
  {
    ca: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          "CA certificate(s) to trust: a PEM file (relative to the pipeline file) or the PEM text itself (default: Node's trusted CAs, which ElastiCache's certificates chain to)",
      }),
    ),
    rejectUnauthorized: Type.Optional(
      Type.Boolean({ description: 'refuse a server whose certificate does not verify (default true)' }),
    ),
    servername: Type.Optional(
      Type.String({ minLength: 1, description: "the name the server's certificate must carry (default: the host)" }),
    ),
  },
  {
    additionalProperties: false,
    description:
      'TLS settings, with a rediss:// URL or cluster nodes: `ca` (PEM file or text to trust), `rejectUnauthorized` (default true), `servername`',
  },
);
export type RedisTlsOptions = Static<typeof redisTlsSchema>;

/** The schema fields of a Redis component's TLS and AUTH token. */
export const redisConnectionFields = {
  tls: Type.Optional(redisTlsSchema),
  authTokenEnv: Type.Optional(
    Type.String({
      pattern: '^[A-Za-z_][A-Za-z0-9_]*$',
      description: 'an environment variable holding the AUTH token (ElastiCache: the auth token of the cluster)',
    }),
  ),
  authTokenSecret: Type.Optional(
    Type.String({
      minLength: 1,
      description:
        'name or ARN of a Secrets Manager secret holding the AUTH token (its text, or JSON with `password` and optional `username`), read once before the first command',
    }),
  ),
};

export interface RedisConnectionOptions {
  /** `redis://` or `rediss://` URL; absent for cluster nodes. */
  url?: string;
  tls?: RedisTlsOptions;
  authTokenEnv?: string;
  authTokenSecret?: string;
  /** Where a relative `tls.ca` path is resolved (default: the working directory). */
  baseDir?: string;
  /** The environment `authTokenEnv` is read from (default `process.env`). */
  env?: Readonly<Record<string, string | undefined>>;
  /** The Secrets Manager client's region and endpoint (default: from the environment). */
  secretsManager?: AwsClientOptions;
  /**
   * Whether a failure to read the secret may pass (throttling, a dropped connection): the
   * error then says so (`$retryable`), so that the caller's retries read again; others are
   * permanent (a missing secret, access denied). Default: none may pass.
   */
  transient?: (err: unknown) => boolean;
}

/** Credentials for Redis AUTH. */
export interface RedisAuth {
  password: string;
  username?: string;
}

export { RedisConnectionError };

export interface RedisConnection {
  /** ioredis options: `tls` when it is on, `password` when the token is known now. */
  options: { tls?: ConnectionOptions; password?: string };
  /**
   * When the token is a secret: reads it (one GetSecretValue call; a success is kept, a failure
   * is not, so a retry reads again).
   */
  auth?: () => Promise<RedisAuth>;
}

const PEM = /-----BEGIN [A-Z0-9 ]+-----/;

/** The CA text of `tls.ca`: the PEM text itself, or the file's content. */
function caOf(ca: string, baseDir: string): string {
  if (PEM.test(ca)) return ca;
  const path = resolve(baseDir, ca);
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new RedisConnectionError(`tls.ca: cannot read ${path}: ${(err as Error).message}`, { cause: err });
  }
  if (!PEM.test(text)) throw new RedisConnectionError(`tls.ca: ${path} holds no PEM certificate`);
  return text;
}

/** The credentials in a secret's text: the text itself, or JSON `{ "password": …, "username"?: … }`. */
export function authOfSecret(id: string, text: string): RedisAuth {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    let parsed: unknown;
    try {
      parsed = JSON.parse(trimmed);
    } catch {
      throw new RedisConnectionError(`authTokenSecret: secret ${id} starts with { but is not JSON`);
    }
    const o = parsed as { password?: unknown; username?: unknown };
    if (typeof o.password !== 'string' || o.password === '') {
      throw new RedisConnectionError(`authTokenSecret: secret ${id} is JSON without a \`password\` text`);
    }
    return typeof o.username === 'string' && o.username !== ''
      ? { password: o.password, username: o.username }
      : { password: o.password };
  }
  if (trimmed === '') throw new RedisConnectionError(`authTokenSecret: secret ${id} is empty`);
  return { password: trimmed };
}

/** Whether a URL carries credentials (`redis://user:token@…`, `rediss://:token@…`). */
const hasUrlAuth = (url: string) => /^rediss?:\/\/[^/@]*@/.test(url);

/**
 * The ioredis options for a Redis component's settings: TLS (with the CA read now) and the
 * token from the environment, or a function reading it from Secrets Manager. Throws a
 * {@link RedisConnectionError} naming the setting when they do not fit together.
 */
export function redisConnection(o: RedisConnectionOptions): RedisConnection {
  const tokens = [o.authTokenEnv, o.authTokenSecret].filter((t) => t !== undefined).length;
  if (tokens > 1) {
    throw new RedisConnectionError('Expected at most one of `authTokenEnv` and `authTokenSecret`, got both');
  }
  if (tokens > 0 && o.url !== undefined && hasUrlAuth(o.url)) {
    throw new RedisConnectionError(
      `Expected the AUTH token in one place: the URL holds one, and so does \`${o.authTokenEnv ? 'authTokenEnv' : 'authTokenSecret'}\``,
    );
  }
  if (o.tls && o.url !== undefined && !o.url.startsWith('rediss://')) {
    throw new RedisConnectionError(
      'Expected a rediss:// URL with `tls` (a redis:// URL is plain TCP): write rediss://host:port',
    );
  }
  const options: RedisConnection['options'] = {};
  const useTls = o.tls !== undefined || o.url?.startsWith('rediss://');
  if (useTls) {
    const tls: ConnectionOptions = { rejectUnauthorized: o.tls?.rejectUnauthorized ?? true };
    if (o.tls?.ca !== undefined) tls.ca = caOf(o.tls.ca, o.baseDir ?? process.cwd());
    if (o.tls?.servername !== undefined) tls.servername = o.tls.servername;
    options.tls = tls;
  }
  if (o.authTokenEnv !== undefined) {
    const token = (o.env ?? process.env)[o.authTokenEnv];
    if (token === undefined || token === '') {
      throw new RedisConnectionError(
        `authTokenEnv: the environment variable ${o.authTokenEnv} is ${token === undefined ? 'not set' : 'empty'}`,
      );
    }
    options.password = token;
  }
  const id = o.authTokenSecret;
  if (id === undefined) return { options };
  let read: Promise<RedisAuth> | undefined;
  const auth = () => {
    read ??= (async () => {
      // Loaded only when a secret is used: a function without one does not load the client.
      const { secretString } = await import('./secretsManager.js');
      let text: string;
      try {
        text = await secretString(id, o.secretsManager);
      } catch (err) {
        const e = err as { name?: unknown; message?: unknown } | null;
        const why = `${typeof e?.name === 'string' ? `${e.name}: ` : ''}${String(e?.message ?? err).split('\n')[0]}`;
        throw new RedisConnectionError(`authTokenSecret: cannot read secret ${id} (${why})`, {
          cause: err,
          retryable: o.transient?.(err) ?? false,
        });
      }
      return authOfSecret(id, text);
    })();
    read.catch(() => {
      read = undefined;
    });
    return read;
  };
  return { options, auth };
}

/** A refused AUTH, or a certificate that does not verify: permanent (retrying only hides them). */
function permanentProblem(err: unknown): string | undefined {
  const e = err as { message?: unknown; code?: unknown } | null;
  const message = typeof e?.message === 'string' ? (e.message.split('\n')[0] ?? '') : '';
  const code = typeof e?.code === 'string' ? e.code : '';
  if (/^(WRONGPASS|NOAUTH)\b|invalid password|invalid username-password/i.test(message)) {
    // The server's reply, never the command (whose arguments hold the token).
    return `authentication refused (${message}): check the AUTH token (authTokenEnv, authTokenSecret or the URL)`;
  }
  if (
    /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME/.test(code) ||
    /self[- ]signed certificate|unable to verify the first certificate|unable to get (local )?issuer certificate|certificate has expired|does not match certificate's altnames/i.test(
      message,
    )
  ) {
    return `the server's TLS certificate does not verify (${message}): give its CA as \`tls.ca\` (or the name it carries as \`tls.servername\`)`;
  }
  return undefined;
}

/** What the `error` events of an ioredis client (or cluster) are listened to with. */
export interface RedisEvents {
  on(event: 'error' | 'ready', listener: (err?: unknown) => void): unknown;
}

/**
 * Watches a client's connection, so that a failed command can say why: ioredis fails commands
 * with "Reached the max retries per request limit" (which reads as transient) when the real
 * reason, a certificate that does not verify, was only an `error` event of the connection.
 * Returns `explain(err)`: a {@link RedisConnectionError} (not transient, without the token) when
 * `err` — or, for a command failed for want of a connection, the connection's last error — is a
 * refused AUTH or a certificate problem; `undefined` otherwise. `where` names the server.
 */
export function watchRedisConnection(
  client: RedisEvents,
  where: string,
): (err: unknown) => RedisConnectionError | undefined {
  let last: unknown;
  // Connection errors also reach the commands that hit them; without a listener ioredis would
  // print each reconnect failure as an unhandled error event.
  client.on('error', (err) => {
    last = err;
  });
  client.on('ready', () => {
    last = undefined;
  });
  return (err) => {
    if (err instanceof RedisConnectionError) return err;
    const own = permanentProblem(err);
    if (own) return new RedisConnectionError(`${where}: ${own}`);
    const name = (err as { name?: unknown } | null)?.name;
    const message = String((err as { message?: unknown } | null)?.message ?? '');
    const noConnection =
      name === 'MaxRetriesPerRequestError' || /Connection is closed|max retries per request/.test(message);
    const cause = noConnection && last !== undefined ? permanentProblem(last) : undefined;
    return cause ? new RedisConnectionError(`${where}: ${cause}`) : undefined;
  };
}
