import { type FileHandle, mkdir, open } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import Type, { type Static } from 'typebox';
import type { Sink, SinkDefinition } from '../compile/types.js';
import type { RecordEnvelope } from '../envelope.js';
import { register } from '../registry.js';
import { toJsonLine } from './json.js';

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

/** Writes JSON Lines; batches are written in order, one write call per batch. */
export class FileSink implements Sink {
  readonly path: string;
  private handle: Promise<FileHandle> | undefined;
  private tail: Promise<void> = Promise.resolve();
  constructor(
    path: string,
    private readonly options: { append?: boolean; sync?: boolean } = {},
  ) {
    this.path = path;
  }

  private file(): Promise<FileHandle> {
    this.handle ??= mkdir(dirname(this.path), { recursive: true }).then(() =>
      open(this.path, this.options.append ? 'a' : 'w'),
    );
    return this.handle;
  }

  async open(): Promise<void> {
    await this.file();
  }

  write(records: readonly RecordEnvelope[]): Promise<void> {
    if (records.length === 0) return this.tail;
    let text = '';
    for (const r of records) text += `${toJsonLine(r.value)}\n`;
    const done = this.tail.then(async () => {
      const fh = await this.file();
      await fh.write(text);
      if (this.options.sync) await fh.datasync();
    });
    this.tail = done;
    return done;
  }

  async close(): Promise<void> {
    await this.tail;
    if (this.handle) await (await this.handle).close();
    this.handle = undefined;
  }
}

export const fileSink: SinkDefinition<FileSinkSpec> = register({
  kind: 'file',
  category: 'sink',
  schema: fileSinkSchema,
  description:
    'Writes each record as one line of JSON. The file is replaced when the pipeline starts unless `append` is set; with `sync` each batch is fsynced before it is acknowledged.',
  summary: (spec) => spec.path,
  create(spec, ctx) {
    const path = isAbsolute(spec.path) ? spec.path : resolve(ctx.baseDir, spec.path);
    return new FileSink(path, { append: spec.append, sync: spec.sync });
  },
});
