/**
 * Stopping a run on SIGINT/SIGTERM after the batch in progress (`run`, `lambda-local`): the
 * outputs are closed with every line complete, and the exit status is 130/143.
 */
import type { Source } from '@tributary/core/spi';
import { EXIT, type Io } from './command.js';

/** The signals that stop a run gracefully, and the exit status after each. */
export const STOP_SIGNALS = { SIGINT: EXIT.sigint, SIGTERM: EXIT.sigterm } as const;
export type StopSignal = keyof typeof STOP_SIGNALS;

/** The stop of a run: `signal` aborts on the first signal; `dispose` removes the listeners. */
export interface SignalStop {
  signal: AbortSignal;
  /** The signal received, if any. */
  received(): StopSignal | undefined;
  dispose(): void;
}

/**
 * SIGINT/SIGTERM while a run is going: the first stops it after the batch in progress (the signal
 * aborts `signal`); a second, while it shuts down, exits at once.
 */
export function stopOnSignals(io: Io, quiet: boolean): SignalStop {
  const controller = new AbortController();
  let received: StopSignal | undefined;
  // On a terminal, leave the progress line first.
  const nl = io.err.isTTY === true ? '\n' : '';
  const listeners = (Object.keys(STOP_SIGNALS) as StopSignal[]).map((sig) => {
    const listener = () => {
      if (received !== undefined) {
        io.err.write(`${nl}tributary: ${sig} again: exiting now (outputs may end in a partial line)\n`);
        process.exit(STOP_SIGNALS[sig]);
      }
      received = sig;
      if (!quiet)
        io.err.write(
          `${nl}tributary: ${sig}: finishing the batch in progress and closing the outputs (again to exit now)\n`,
        );
      controller.abort(sig);
    };
    process.on(sig, listener);
    return [sig, listener] as const;
  });
  return {
    signal: controller.signal,
    received: () => received,
    dispose: () => {
      for (const [sig, listener] of listeners) process.off(sig, listener);
    },
  };
}

/**
 * The source of a run, read at most one batch ahead of the batch in progress, which ends when
 * `signal` aborts: batches already handed on finish. A source that can stop (the file source's
 * `stop()`) hands over the complete lines it has read as a last batch; of another, a batch being
 * read is abandoned (so the outputs hold whole batches, and the run ends as if its input ended there).
 */
export function stoppable(source: Source, signal: AbortSignal) {
  let inFlight = 0;
  let ended = false;
  let wake: (() => void) | undefined;
  const nudge = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const STOP = Symbol('stop');
  const stopSource = (source as { stop?: unknown }).stop;
  const drains = typeof stopSource === 'function';
  signal.addEventListener(
    'abort',
    () => {
      if (drains) (stopSource as () => void).call(source);
      nudge();
    },
    { once: true },
  );
  return {
    source: {
      async *batches() {
        const it = source.batches()[Symbol.asyncIterator]();
        let reading = false;
        try {
          for (;;) {
            while (inFlight >= 2 && !signal.aborted && !ended) await new Promise<void>((r) => (wake = r));
            if (ended || (signal.aborted && !drains)) return;
            reading = true;
            // A source that drains ends its read itself when stopped; another's read is abandoned.
            const next = drains ? await it.next() : await readOrStop(it, signal, STOP);
            if (next === STOP) return;
            reading = false;
            if (next.done || (signal.aborted && !drains)) return;
            inFlight++;
            yield next.value;
          }
        } finally {
          // A read in progress (standard input waiting for a line) is left behind, not awaited.
          if (reading) it.return?.().catch(() => {});
          else await it.return?.();
        }
      },
      close: async () => source.close?.(),
    } satisfies Source,
    /** A batch handed on has been processed. */
    batchDone: () => {
      inFlight--;
      nudge();
    },
    /** The run is over (done or failed): stop waiting. */
    end: () => {
      ended = true;
      nudge();
    },
  };
}

/** The next batch, or `stop` if `signal` aborts first (the read is then abandoned, its outcome ignored). */
function readOrStop<T, S>(it: AsyncIterator<T>, signal: AbortSignal, stop: S): Promise<IteratorResult<T> | S> {
  return new Promise((resolve, reject) => {
    const onAbort = () => resolve(stop);
    signal.addEventListener('abort', onAbort, { once: true });
    it.next().then(
      (r) => {
        signal.removeEventListener('abort', onAbort);
        resolve(r);
      },
      (err: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(err);
      },
    );
  });
}
