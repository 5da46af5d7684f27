/**
 * The settings of a pipeline that work on a laptop but not in a Lambda function, found before
 * `synth` bundles it: an endpoint, URL or Redis node on a loopback address (the function cannot
 * reach this machine), and file outputs — a `file` sink, dead-letter or late output would write
 * into the function's package folder, which is read-only. (`stdout`/`stderr` are fine: they go
 * to CloudWatch Logs. A `file` source is fine too: the function's records come from its event.)
 * `synth` refuses them, or with `--allow-local` prints them as warnings.
 */

import { isLoopbackHost, isLoopbackUrl } from '@tributary/aws';
import type { Pipeline, ValidationIssue } from '@tributary/core';
import { walkComponents } from '@tributary/core/spi';

/** The option names holding a URL a component connects to. */
const URL_FIELDS = ['endpoint', 'url'] as const;

/** What a sink at `path` is, in words: the dead-letter output, a window's late output, or a sink. */
function sinkRole(path: string): string {
  if (path === '/deadLetter' || path.startsWith('/deadLetter/')) return 'dead-letter output';
  if (/\/late(\/|$)/.test(path)) return 'late output';
  return 'sink';
}

/** The host of a Redis cluster seed `host:port` (`[v6]:port` too). */
function seedHost(seed: string): string {
  const v6 = /^\[([^\]]*)\]/.exec(seed);
  if (v6) return v6[1] as string;
  const colon = seed.lastIndexOf(':');
  return colon === -1 ? seed : seed.slice(0, colon);
}

/**
 * Whether a host is this machine in any form a client's resolver accepts: the URL parser of a
 * non-special scheme (redis://) leaves `127.1`, `0x7f.1`, `0177.0.0.1` or `2130706433` as typed,
 * and a cluster seed is no URL at all, yet getaddrinfo reads each as 127.0.0.1. So the host is
 * read as an http:// URL's host (which writes IPv4 in its four-part form, IPv6 compressed) too.
 */
export function isLocalHost(host: string): boolean {
  if (isLoopbackHost(host)) return true;
  const bare = host.replace(/^\[(.*)\]$/, '$1');
  try {
    return isLoopbackHost(new URL(`http://${bare.includes(':') ? `[${bare}]` : bare}/`).hostname);
  } catch {
    return false;
  }
}

/** The host of a URL (any scheme), or undefined for text that is no URL. */
function urlHost(url: string): string | undefined {
  try {
    return new URL(url).hostname;
  } catch {
    return undefined;
  }
}

/**
 * Every local setting of `pipeline`, located in its file (`pipeline.locate`), as validation issues.
 * A Redis `url` with no host counts as loopback (the client then connects to localhost).
 */
export function localSettings(pipeline: Pipeline): ValidationIssue[] {
  const problems: ValidationIssue[] = [];
  const add = (path: string, message: string) => {
    const at = pipeline.locate?.(path);
    problems.push({ file: pipeline.file, ...(at ?? {}), path, message });
  };
  for (const use of walkComponents(pipeline.spec)) {
    if (use.category === 'step') continue;
    const options = (use.spec ?? {}) as Record<string, unknown>;
    const what = `${use.category === 'sink' ? sinkRole(use.path) : use.category} \`${use.kind}\``;
    if (use.category === 'sink' && use.kind === 'file') {
      add(
        `${use.path}/file`,
        `${what} writes a file, which a Lambda function cannot (its package folder is read-only): use stdout/stderr (CloudWatch Logs) or an AWS sink (s3, sqs, kinesis, dynamodb)`,
      );
      continue;
    }
    for (const field of URL_FIELDS) {
      const value = options[field];
      if (typeof value !== 'string') continue;
      const noHost = use.kind === 'redis' && /^rediss?:\/\/(?:[^@/]*@)?(?:[/?#]|:\d|$)/.test(value);
      const host = urlHost(value);
      if (isLoopbackUrl(value) || (host !== undefined && isLocalHost(host)) || noHost)
        add(
          `${use.path}/${use.kind}/${field}`,
          `${what}: ${field} ${value} is on this machine (a loopback address), which a Lambda function cannot reach: ${
            field === 'endpoint'
              ? 'leave `endpoint` out for the AWS one (point local runs at emulators with AWS_ENDPOINT_URL_<SERVICE>), or give it per environment'
              : 'give the deployed one'
          } with \${NAME} and --env-file`,
        );
    }
    const cluster = options.cluster;
    if (Array.isArray(cluster))
      cluster.forEach((seed, i) => {
        if (typeof seed === 'string' && isLocalHost(seedHost(seed)))
          add(
            `${use.path}/${use.kind}/cluster/${i}`,
            `${what}: cluster node ${seed} is on this machine (a loopback address), which a Lambda function cannot reach`,
          );
      });
  }
  return problems;
}
