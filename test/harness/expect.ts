/**
 * Assertions on a finished program run: success, or a refusal the way the CLI promises it
 * (non-zero exit, a human message on stderr that says why, no stack trace).
 */
import { expect } from 'vitest';
import type { RunResult } from './system';

function show(what: string, res: RunResult): string {
  const how = res.timedOut ? 'timed out' : res.signal ? `killed by ${res.signal}` : `exit code ${res.code}`;
  return `${what}: ${how}\n--- stdout ---\n${res.stdout.trimEnd()}\n--- stderr ---\n${res.stderr.trimEnd()}`;
}

/** The lines of stderr that are not pino JSON log lines. */
export function humanLines(stderr: string): string[] {
  return stderr.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('{'));
}

const STACK_LINE = /^\s*at\s+(?:\S+\s+\()?(?:\/|node:|file:)[^)]*:\d+:\d+\)?$/m;

export function expectSuccess(res: RunResult, what: string): void {
  expect(res.timedOut, show(what, res)).toBe(false);
  expect(res.code, show(what, res)).toBe(0);
}

/**
 * The run failed cleanly: exited non-zero by itself (no timeout, no signal), printed a human
 * message on stderr matching every pattern, and no stack trace.
 */
export function expectRefused(res: RunResult, what: string, ...patterns: RegExp[]): string {
  const desc = show(what, res);
  expect(res.timedOut, desc).toBe(false);
  expect(res.signal, desc).toBeNull();
  expect(res.code, desc).not.toBe(0);
  const human = humanLines(res.stderr).join('\n');
  expect(human, `${desc}\n(expected a human-readable error on stderr)`).not.toBe('');
  expect(STACK_LINE.test(res.stderr), `${desc}\n(expected no stack trace)`).toBe(false);
  for (const p of patterns) expect(human, `${desc}\n(expected the message to match ${p})`).toMatch(p);
  if (process.env.PGREPO_TEST_VERBOSE === '1') console.log(`[refused] ${what}: ${human}`);
  return human;
}
