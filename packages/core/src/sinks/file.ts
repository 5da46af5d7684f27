import { type FileHandle, open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import Type, { type Static } from 'typebox';
import type { Sink, SinkContext, SinkDefinition } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { OutputError } from '../errors.js';
import { register } from '../registry.js';
import { lockOutput, makeDirectory } from './fileLock.js';
import { jsonLines } from './json.js';

export const fileSinkSchema = Type.Object(
  {
    path: Type.String({ minLength: 1, description: 'output file, relative to the pipeline file' }),
    append: Type.Optional(Type.Boolean({ description: 'append instead of replacing the file (default false)' })),
    sync: Type.Optional(
      Type.Boolean({ description: 'fsync after each batch before acknowledging it (default false)' }),
    ),
  },
  { additionalProperties: false },
);
export type FileSinkSpec = Static<typeof fileSinkSchema>;

declare module '../index.js' {
  interface SinkKinds {
    file: FileSinkSpec;
  }
}

/**
 * Writes JSON Lines; batches are written in order, one write call per batch. The file is locked
 * while the sink is open (`<path>.lock`, see `lockOutput`): a second run writing the same file is
 * refused with an {@link OutputError}. A record that has no JSON form is dead-lettered (reason
 * `sink`); without a dead-letter output to send it to (the sink is itself one), a writable form
 * of it is written instead (see `jsonSafe`).
 */
export class FileSink implements Sink {
  readonly path: string;
  private handle: Promise<FileHandle> | undefined;
  private unlock: (() => Promise<void>) | undefined;
  private tail: Promise<void> = Promise.resolve();
  constructor(
    path: string,
    private readonly options: { append?: boolean; sync?: boolean } = {},
  ) {
    this.path = path;
  }

  get outputFile(): string {
    return this.path;
  }

  private file(): Promise<FileHandle> {
    this.handle ??= this.openFile();
    return this.handle;
  }

  private async openFile(): Promise<FileHandle> {
    await makeDirectory(dirname(this.path));
    // Locked before the file is opened: opening it replaces its content.
    const unlock = await lockOutput(this.path);
    try {
      const fh = await open(this.path, this.options.append ? 'a' : 'w');
      this.unlock = unlock;
      return fh;
    } catch (err) {
      await unlock();
      throw new OutputError(`cannot open output ${this.path}: ${(err as Error).message}`, { cause: err });
    }
  }

  async open(): Promise<void> {
    await this.file();
  }

  write(records: readonly RecordEnvelope[], context?: SinkContext): Promise<void> {
    if (records.length === 0) return this.tail;
    const text = jsonLines(records, context);
    if (text === '') return this.tail;
    const done = this.tail.then(async () => {
      const fh = await this.file();
      try {
        await fh.write(text);
        if (this.options.sync) await fh.datasync();
      } catch (err) {
        throw new OutputError(`cannot write output ${this.path}: ${(err as Error).message}`, { cause: err });
      }
    });
    this.tail = done;
    return done;
  }

  async close(): Promise<void> {
    // A failed write was reported to its caller already (the batch failed); close releases the file.
    try {
      await this.tail.catch(() => {});
    } finally {
      const handle = this.handle;
      this.handle = undefined;
      try {
        const fh = await handle?.catch(() => undefined); // a file that failed to open has nothing to close
        await fh?.close().catch((err: unknown) => {
          throw new OutputError(`cannot close output ${this.path}: ${(err as Error).message}`, { cause: err });
        });
      } finally {
        const unlock = this.unlock;
        this.unlock = undefined;
        await unlock?.();
      }
    }
  }
}

export const fileSinkDefinition: SinkDefinition<FileSinkSpec> = register({
  kind: 'file',
  category: 'sink',
  module: './sinks/file.js',
  schema: fileSinkSchema,
  description:
    'Writes each record as one line of JSON. The file is replaced when the pipeline starts unless `append` is set; with `sync` each batch is fsynced before it is acknowledged. While the pipeline runs the file is locked (`<path>.lock`, holding the pid): a second run writing the same file is refused; a lock left by a process that is no longer running is taken over.',
  summary: (spec) => spec.path,
  create(spec, ctx) {
    const path = isAbsolute(spec.path) ? spec.path : resolve(ctx.baseDir, spec.path);
    return new FileSink(path, { append: spec.append, sync: spec.sync });
  },
});
