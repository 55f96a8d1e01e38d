import { Counter, Histogram, Registry } from 'prom-client';

/** The webhook's own account of every admission call it answered (what an operator graphs, what tests count). */
export class WebhookMetrics {
  readonly registry: Registry;
  readonly requests: Counter<'webhook' | 'result'>;
  readonly duration: Histogram<'webhook'>;

  constructor(registry = new Registry()) {
    this.registry = registry;
    this.requests = new Counter({
      name: 'ferry_webhook_admission_requests_total',
      help: 'Admission reviews answered, by webhook path and result (allowed, denied, error)',
      labelNames: ['webhook', 'result'],
      registers: [registry],
    });
    this.duration = new Histogram({
      name: 'ferry_webhook_admission_duration_seconds',
      help: 'Time from receiving an admission review to answering it',
      labelNames: ['webhook'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers: [registry],
    });
  }

  /** Calls answered so far for one webhook path, all results together. */
  async count(webhook: string): Promise<number> {
    const m = await this.requests.get();
    return m.values.filter((v) => v.labels.webhook === webhook).reduce((n, v) => n + v.value, 0);
  }
}
