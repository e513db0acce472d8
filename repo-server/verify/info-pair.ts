import type { InfoSections } from '../../shared/info/ini';
import { parseInfo } from '../../shared/info/ini';
import type { VerifyProblem } from '../../shared/generated/pgrepo/v1/VerifyProblem';
import type { ServerContext } from '../context';
import { problem } from './model';

export interface InfoPair {
  problems: VerifyProblem[];
  /** the first of the two that loads */
  sections?: InfoSections;
}

/** An info file and its .copy (their texts, null when missing) must both load and be identical (they are written from one text). */
export function judgeInfoPair(key: string, texts: (string | null)[]): InfoPair {
  const pair: InfoPair = { problems: [] };
  [key, `${key}.copy`].forEach((candidate, i) => {
    const text = texts[i];
    if (text === null) {
      pair.problems.push(problem('info', candidate, 'missing'));
      return;
    }
    try {
      pair.sections ??= parseInfo(text, candidate);
    } catch (err) {
      pair.problems.push(problem('info', candidate, (err as Error).message));
    }
  });
  if (pair.problems.length === 0 && texts[0] !== texts[1]) pair.problems.push(problem('info', `${key}.copy`, `differs from ${key}`));
  return pair;
}

export async function checkInfoPair(ctx: ServerContext, key: string): Promise<InfoPair> {
  const texts = await Promise.all([key, `${key}.copy`].map(async (k) => (await ctx.storage.read(k))?.toString('utf8') ?? null));
  return judgeInfoPair(key, texts);
}
