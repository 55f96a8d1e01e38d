import { nanos, RetentionPolicy, StorageType, type JetStreamManager } from 'nats';
import { ensureResultsStream } from './results.js';
import { RESULTS_STREAM, subjects } from './subjects.js';

/** API error code nats-server answers when a stream exists with another configuration. */
const STREAM_NAME_IN_USE = 10058;

/**
 * Creates the results stream with `replicas` copies (a JetStream cluster keeps
 * results through the loss of a minority of its servers), or brings an
 * existing stream to that many. The controller's own ensure later updates only
 * what it sets, so the replicas stay.
 */
export async function ensureResultsReplicas(jsm: JetStreamManager, replicas: number): Promise<number> {
  if (!Number.isInteger(replicas) || replicas < 1 || replicas > 5) throw new RangeError(`results stream replicas must be 1 to 5, got ${replicas}`);
  try {
    await jsm.streams.add({
      name: RESULTS_STREAM,
      subjects: [subjects.allResults()],
      storage: StorageType.File,
      retention: RetentionPolicy.Limits,
      num_replicas: replicas,
      max_age: nanos(7 * 24 * 3600 * 1000),
    });
  } catch (err) {
    if ((err as { api_error?: { err_code?: number } }).api_error?.err_code !== STREAM_NAME_IN_USE) throw err;
    const info = await jsm.streams.info(RESULTS_STREAM);
    if (info.config.num_replicas !== replicas) await jsm.streams.update(RESULTS_STREAM, { num_replicas: replicas });
  }
  const info = await ensureResultsStream(jsm);
  return info.config.num_replicas;
}
