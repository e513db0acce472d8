/**
 * A cluster a restore wrote, started and recovered: archiving off (it must not push into the
 * stanza of the cluster it came from), waited on until it has promoted. With `immediate`,
 * recovery stops as soon as the backup is consistent, so the cluster holds exactly the
 * backup's moment rather than everything the archive has since.
 */
import type { Fixture } from './fixture';
import { clusterAt, query, startCluster, type Cluster } from './pg';
import { waitUntil } from './system';

export async function startRestored(fx: Fixture, o: { name: string; dir: string; port: number; immediate?: boolean }): Promise<Cluster> {
  const restored = clusterAt({ name: o.name, dir: o.dir, port: o.port, socketDir: fx.socketDir });
  fx.clusters.push(restored);
  const target: Record<string, string> = o.immediate ? { recovery_target: 'immediate', recovery_target_action: 'promote' } : {};
  await startCluster(restored, { settings: { archive_mode: 'off', ...target } });
  await waitUntil(`${o.name} to finish recovery (pg_is_in_recovery() = false)`,
    async () => (await query<{ r: boolean }>(restored, 'select pg_is_in_recovery() as r'))[0].r === false,
    { timeoutMs: 120_000, intervalMs: 300 });
  return restored;
}
