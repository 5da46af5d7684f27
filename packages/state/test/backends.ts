/**
 * The two shared stores under test, each on its real server, with a fresh namespace per use, and
 * a fault-injecting wrapper for crash and throttling tests.
 */
import {
  type CompiledPipeline,
  compile,
  type DeadLetterRecord,
  MemorySink,
  type Pipeline,
  parsePipelineYaml,
} from '@tributary/core';
import type { StateStore, WindowScope } from '@tributary/core/spi';
import {
  dynamoDbState,
  ItemWindowStore,
  redisState,
  type StateBackend,
  type WindowStateOptions,
} from '@tributary/state';
import type { SchedulerLike } from 'rxjs';
import {
  createStateTables,
  type RedisServer,
  startDynalite,
  startRedis,
  useServers,
} from '../../../test-support/emulators.js';
import { type Kind, windowYaml } from '../../core/test/windows/reference.js';

export type BackendName = 'dynamodb' | 'redis';
/** Every shared store, in the order the tests run them. */
export const BACKENDS: readonly BackendName[] = ['dynamodb', 'redis'];

export interface Backends {
  dynamodb: { endpoint: string; table: string };
  redis: RedisServer;
  close(): Promise<void>;
}

export async function startBackends(): Promise<Backends> {
  const dyn = await startDynalite();
  const table = 'tributary-state';
  await createStateTables(dyn.endpoint, table);
  const redis = await startRedis();
  return {
    dynamodb: { endpoint: dyn.endpoint, table },
    redis,
    close: async () => {
      await dyn.close();
      await redis.close();
    },
  };
}

/** Both servers for the tests of one file: started before the first, closed after the last (filled in by then). */
export const useBackends = (): Backends => useServers(startBackends);

let runs = 0;
/** A pipeline name nobody used yet (state namespaces start with it). */
export const freshName = () => `p${process.pid}-${++runs}`;

/** The YAML `state:` line for a backend. */
export function stateYaml(b: Backends, name: BackendName, extra = ''): string {
  return name === 'dynamodb'
    ? `state: { dynamodb: { table: ${b.dynamodb.table}, endpoint: '${b.dynamodb.endpoint}'${extra} } }`
    : `state: { redis: { url: '${b.redis.url}'${extra} } }`;
}

/** A pipeline over a file with event time `event.t` and the reference's window step, its state given by a YAML `state:` line. */
export const windowPipelineYaml = (name: string, w: Kind, emit: string, state: string) =>
  `version: 1\nname: ${name}\nsource: { file: { path: in.jsonl } }\neventTime: event.t\nsteps:\n${windowYaml(w, emit, `\n      ${state}`)}\n`;

/** A state store object for a backend (TypeScript form). */
export function stateStore(b: Backends, name: BackendName, options: WindowStateOptions = {}) {
  return name === 'dynamodb'
    ? dynamoDbState({ table: b.dynamodb.table, endpoint: b.dynamodb.endpoint, ...options })
    : redisState({ url: b.redis.url, ...options });
}

/** A pipeline from YAML text, with objects bound by name. */
export function yamlPipeline(text: string, bindings: Record<string, unknown> = {}): Pipeline {
  const parsed = parsePipelineYaml(text, 'test.yaml');
  if (!parsed.spec) throw new Error(parsed.issues.map((i) => `${i.line}:${i.column}: ${i.message}`).join('\n'));
  return { spec: parsed.spec, bindings: new Map(Object.entries(bindings)), baseDir: process.cwd() };
}

/** A compiled pipeline standing for one process: acknowledged output (batch tails) and dead letters. */
export function processOf(p: Pipeline, scheduler?: SchedulerLike) {
  const dead = new MemorySink<DeadLetterRecord>();
  const compiled: CompiledPipeline = compile(p, { deadLetter: dead, collectTail: true, scheduler });
  const out: Record<string, unknown>[] = [];
  const take = (r: { tail?: { value: unknown }[] }) => {
    for (const e of r.tail ?? []) out.push(e.value as Record<string, unknown>);
  };
  return {
    compiled,
    out,
    dead,
    process: async (b: Parameters<CompiledPipeline['process']>[0]) => take(await compiled.process(b)),
    tick: async () => take(await compiled.tick()),
    flush: async (options?: { shards?: readonly string[] }) => take(await compiled.flush(options)),
    close: () => compiled.close(),
  };
}

export type Fault = (call: string, phase: 'before' | 'after') => void;
/** A backend that never fails. */
export const noFault: Fault = () => {};

/**
 * A store whose backend calls `fault` before and after every call (it may throw there: a crash
 * before a write, or after a write but before the batch is acknowledged).
 */
export function faultyStore(
  real: StateStore & { backend: StateBackend },
  fault: Fault,
  options: WindowStateOptions = {},
): StateStore {
  const backend = real.backend;
  const wrapped = new Proxy(backend, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver);
      if (typeof v !== 'function' || prop === 'close') return v;
      return async (...args: unknown[]) => {
        fault(String(prop), 'before');
        const result = await (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
        fault(String(prop), 'after');
        return result;
      };
    },
  }) as StateBackend;
  return {
    kind: 'tributary.state-store',
    summary: `faulty ${real.summary}`,
    forWindows: (scope: WindowScope) => new ItemWindowStore(wrapped, scope, options),
    close: () => real.close(),
  };
}

/** The windows of `windowProcess`: tumbling, 100 ms. */
export const TUMBLING = { kind: 'tumbling', size: 100 } as const;

/**
 * A process running a tumbling-window pipeline (every aggregate of the reference, `TUMBLING`
 * windows) whose state goes through `fault`, with fast retries.
 */
export function windowProcess(
  servers: Backends,
  backend: BackendName,
  name: string,
  fault: Fault = noFault,
  options: WindowStateOptions = { retry: { retries: 3, minDelay: 1, maxDelay: 5 } },
) {
  const store = faultyStore(stateStore(servers, backend, options), fault, options);
  return processOf(yamlPipeline(windowPipelineYaml(name, TUMBLING, 'final', 'state: { ref: store }'), { store }));
}
