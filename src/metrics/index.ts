/** Prometheus metrics and the /metrics, /healthz, /readyz endpoint of Ferry's processes. */
export { ControllerMetrics, type ControllerSnapshot, type MigrationView, type LimitsView, type NodeView } from './controllerMetrics.js';
export { HandlerMetrics, type HandlerJobView, type HandlerNodeView } from './handlerMetrics.js';
export {
  startHealthServer,
  probe,
  pass,
  fail,
  type HealthServer,
  type HealthServerOptions,
  type Check,
  type CheckResult,
  type Checks,
  type ProbeReport,
} from './healthServer.js';
export { migrationView, type LiveMigration } from './migrationView.js';
export { natsConnectionCheck, controllerReadiness, handlerReadiness, liveness } from './readiness.js';
export {
  waitingReasonClass,
  rejectionReasonClass,
  ADMITTED,
  WAITING_CLASSES,
  REJECTION_CLASSES,
  type AdmissionResult,
  type AdmissionReasonClass,
  type WaitingClass,
  type RejectionClass,
} from './admissionReason.js';
