/**
 * Whether the migration a VMI's open migrationState names is really gone.
 * The informer's cache alone cannot say so: a new leader's first reconciles
 * and a relist after a closed watch can run while the cache still lacks a
 * VMIM that exists. Closing the state of a migration that is in fact in
 * flight cancels its target under it (found by the chaos campaign, seed 1000),
 * so absence is confirmed with the API server before anything is closed.
 */
export async function migrationGone(
  uid: string,
  cached: readonly { metadata?: { uid?: string } }[],
  listLive: () => Promise<readonly unknown[]>,
): Promise<boolean> {
  if (cached.some((o) => o.metadata?.uid === uid)) return false;
  const live = await listLive();
  return !live.some((o) => (o as { metadata?: { uid?: string } } | undefined)?.metadata?.uid === uid);
}
