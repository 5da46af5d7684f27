/** Installs the window operators that keep their state in a shared store (see `sharedWindows.ts`). */
import { SharedRangeWindows } from './SharedRangeWindows.js';
import { SharedSessionWindows } from './SharedSessionWindows.js';
import { SharedSlidingWindows } from './SharedSlidingWindows.js';
import { installSharedWindowOperators } from './sharedWindows.js';

installSharedWindowOperators({
  ranges: (settings, node, ctx, store) => new SharedRangeWindows(settings, node, ctx, store),
  sessions: (settings, node, ctx, store) => new SharedSessionWindows(settings, node, ctx, store),
  sliding: (settings, node, ctx, store) => new SharedSlidingWindows(settings, node, ctx, store),
});
