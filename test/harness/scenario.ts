/**
 * A story told in steps: each step is its own test (so the report says which step broke),
 * they run in order, and once one fails the later ones are skipped instead of failing with
 * confusing follow-up errors.
 */
import { it } from 'vitest';

export type Step = (name: string, fn: () => Promise<void>, timeoutMs?: number) => void;

export function scenario(): Step {
  let failed: string | null = null;
  return (name, fn, timeoutMs = 120_000) => {
    it(
      name,
      async (ctx) => {
        if (failed) ctx.skip(`skipped: the earlier step '${failed}' failed`);
        ctx.onTestFailed(() => {
          failed ??= name;
        });
        await fn();
      },
      timeoutMs,
    );
  };
}
