import type { TlsFiles } from '../certs/tlsMaterial.js';
import type { ProxyCounters } from './migrationProxy.js';

/** What crosses between the handler's thread and its proxy worker (structured clone, so plain data only). */

export type WorkerTransport =
  | { kind: 'tcp' }
  | { kind: 'tls'; server: TlsFiles; client: TlsFiles };

export type ProxySpec =
  | { side: 'target'; target: { migrationUid: string; host: string; deliverTo: Record<number, string> } }
  | { side: 'source'; source: { migrationUid: string; kubevirtDir: string; targetHost: string; targetPorts: Record<string, number> } };

export interface WorkerHostData { logLevel: string }

export type ToWorker =
  /** counters: a SharedArrayBuffer of COUNTER_FIELDS.length float64s, written by the worker. */
  | ({ type: 'start'; id: number; transport: WorkerTransport; counters: SharedArrayBuffer } & ProxySpec)
  | { type: 'tls'; id: number; server?: TlsFiles; client?: TlsFiles }
  | { type: 'close'; id: number; cut: boolean };

export type FromWorker =
  | { type: 'ready'; id: number; ports: Record<string, number> }
  | { type: 'failed'; id: number; message: string }
  | { type: 'closed'; id: number }
  | { type: 'log'; level: string; fields: Record<string, unknown>; msg: string };

export const COUNTER_FIELDS = ['connections', 'bytesForward', 'bytesBack', 'refused'] as const satisfies ReadonlyArray<keyof ProxyCounters>;
