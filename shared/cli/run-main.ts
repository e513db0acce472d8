import { UserError, isServiceError } from '../errors';

/**
 * Runs a program's main and turns any failure into one line on stderr and a non-zero exit:
 * an operator sees what went wrong, never a stack trace (PGREPO_DEBUG=1 shows it).
 */
export function runMain(program: string, main: () => Promise<number | void>): void {
  main().then(
    (code) => {
      if (typeof code === 'number') process.exitCode = code;
    },
    (err: unknown) => {
      const message = err instanceof UserError || isServiceError(err) ? (isServiceError(err) ? err.details : err.message) : String((err as Error)?.message ?? err);
      process.stderr.write(`${program}: error: ${message}\n`);
      if (process.env.PGREPO_DEBUG && err instanceof Error) process.stderr.write(`${err.stack}\n`);
      process.exitCode = err instanceof UserError ? err.exitCode : 1;
    },
  );
}
