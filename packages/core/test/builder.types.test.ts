import { fileSink, fileSource, type Pipeline, pipeline, staticLookup } from '@tributary/core';
import { describe, expectTypeOf, it } from 'vitest';

type Click = { type: 'click' | 'view'; userId: string; amount: number; ts: number; items: { sku: string }[] };
type Profile = { name: string; plan: 'free' | 'pro' };

// These lines are checked by `tsc` (pnpm typecheck): each @ts-expect-error must be an error.
describe('typed builder', () => {
  it('infers the record type through every step', () => {
    const b = pipeline('clicks')
      .source(fileSource<Click>({ path: 'events.jsonl' }))
      .eventTime((e) => e.ts)
      .filter((e) => e.type === 'click')
      .map((e) => ({ user: e.userId, amount: e.amount }))
      .enrich({ lookup: staticLookup<Profile>({ path: 'users.json' }), key: (e) => e.user, as: 'profile' })
      .keyBy((e) => e.user)
      .branch([
        {
          when: (e) => e.amount > 100,
          steps: (r) => r.map((e) => e.profile?.plan).sink(fileSink({ path: 'big.jsonl' })),
        },
      ])
      .sink(fileSink({ path: 'out.jsonl' }));
    expectTypeOf(b).toEqualTypeOf<
      import('@tributary/core').PipelineBuilder<{ user: string; amount: number } & { profile: Profile | null }>
    >();
    expectTypeOf(b.build()).toEqualTypeOf<Pipeline>();

    const items = pipeline('items')
      .source(fileSource<Click>({ path: 'x' }))
      .flatMap((e) => e.items);
    expectTypeOf(items).toEqualTypeOf<import('@tributary/core').PipelineBuilder<{ sku: string }>>();
  });

  it('rejects a wrong field at compile time', () => {
    pipeline('x')
      .source(fileSource<Click>({ path: 'x' }))
      // @ts-expect-error `user` is not a field of Click
      .filter((e) => e.user === 'a');

    pipeline('x')
      .source(fileSource<Click>({ path: 'x' }))
      .map((e) => ({ who: e.userId }))
      // @ts-expect-error after map the record has `who`, not `userId`
      .keyBy((e) => e.userId);

    pipeline('x')
      .source(fileSource<Click>({ path: 'x' }))
      .enrich({ lookup: staticLookup<Profile>({ path: 'u.json' }), key: (e) => e.userId, as: 'p' })
      // @ts-expect-error the profile is nullable (onMissing: keep) and has no `email`
      .map((e) => e.p.email);

    pipeline('x')
      .source(fileSource<Click>({ path: 'x' }))
      // @ts-expect-error a filter must return a boolean
      .filter((e) => e.amount);
  });

  it('types CEL steps as unknown', () => {
    const b = pipeline('x')
      .source(fileSource<Click>({ path: 'x' }))
      .map('{"a": event.amount}');
    expectTypeOf(b).toEqualTypeOf<import('@tributary/core').PipelineBuilder<unknown>>();
  });
});
