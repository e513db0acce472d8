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

/** An info file and its .copy must both load and be identical (they are written from one text). */
export async function checkInfoPair(ctx: ServerContext, key: string): Promise<InfoPair> {
  const texts: (string | null)[] = [];
  const pair: InfoPair = { problems: [] };
  for (const candidate of [key, `${key}.copy`]) {
    const data = await ctx.storage.read(candidate);
    texts.push(data === null ? null : data.toString('utf8'));
    if (data === null) {
      pair.problems.push(problem('info', candidate, 'missing'));
      continue;
    }
    try {
      pair.sections ??= parseInfo(data.toString('utf8'), candidate);
    } catch (err) {
      pair.problems.push(problem('info', candidate, (err as Error).message));
    }
  }
  if (pair.problems.length === 0 && texts[0] !== texts[1]) pair.problems.push(problem('info', `${key}.copy`, `differs from ${key}`));
  return pair;
}
