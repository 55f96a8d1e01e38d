/**
 * prom-client asks every metric's `collect` separately during one scrape. Gauges
 * derived from one state snapshot must all see the same snapshot (or phase
 * counts would not add up), and the snapshot should be taken once per scrape, so
 * the value is kept until the event loop moves on: one scrape runs every
 * `collect` in the same turn, the next scrape gets a fresh one.
 */
export function perScrape<T>(take: () => T): () => T {
  let cached: { value: T } | undefined;
  return () => {
    if (!cached) {
      cached = { value: take() };
      setImmediate(() => {
        cached = undefined;
      });
    }
    return cached.value;
  };
}
