import * as cli from '@tributary/cli';
import * as synth from '@tributary/cli/synth';
import { describe, expect, it } from 'vitest';

describe('public surface of @tributary/cli', () => {
  it('exports exactly this list (a change here is a visible diff)', () => {
    expect(Object.keys(cli).sort()).toEqual(['EXIT', 'UsageError', 'main', 'withOverrides']);
    expect(Object.keys(synth).sort()).toEqual(['synth', 'template']);
  });
});
