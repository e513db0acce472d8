import { UserError } from '../shared/errors';

export type Role = 'agent' | 'admin' | 'viewer';

export interface AuthRule {
  identity: string;
  role: Role;
  /** null = every stanza (admin/viewer without a list) */
  stanzas: string[] | null;
}

/** Parses `CN=ROLE[:STANZA,...]`, the value of --auth. */
export function parseAuthRule(text: string): AuthRule {
  const m = /^([^=]+)=(agent|admin|viewer)(?::(.+))?$/.exec(text.trim());
  if (!m) {
    throw new UserError(`--auth '${text}' is not CN=ROLE[:STANZA,...] with ROLE agent, admin or viewer (e.g. --auth db1=agent:main)`);
  }
  const role = m[2] as Role;
  const stanzas = m[3] ? m[3].split(',').map((s) => s.trim()).filter(Boolean) : null;
  if (role === 'agent' && !stanzas) throw new UserError(`--auth '${text}': an agent must be granted stanzas (e.g. ${m[1]}=agent:main)`);
  return { identity: m[1].trim(), role, stanzas };
}

export class AuthRules {
  private readonly byIdentity: Map<string, AuthRule>;

  constructor(rules: AuthRule[]) {
    this.byIdentity = new Map();
    for (const rule of rules) {
      if (this.byIdentity.has(rule.identity)) throw new UserError(`--auth names '${rule.identity}' twice: give each identity one rule`);
      this.byIdentity.set(rule.identity, rule);
    }
  }

  static parse(texts: string[]): AuthRules {
    return new AuthRules(texts.map(parseAuthRule));
  }

  rule(identity: string): AuthRule | undefined {
    return this.byIdentity.get(identity);
  }

  all(): AuthRule[] {
    return [...this.byIdentity.values()];
  }

  get size(): number {
    return this.byIdentity.size;
  }
}

export function mayAccessStanza(rule: AuthRule, stanza: string): boolean {
  return rule.stanzas === null || rule.stanzas.includes(stanza);
}
