/**
 * Every NATS subject Ferry uses, in one place. Subjects are an API: versioned,
 * built by these functions only. Node names and uids are Kubernetes names/uids,
 * which never contain NATS wildcard or separator characters other than '.',
 * so '.' is escaped.
 */
export const PREFIX = 'ferry.v1';

export const COMMANDS = [
  'prepare-target',
  'start-source',
  'finish-target',
  'abort',
  'set-bandwidth',
  'set-downtime',
  'post-copy',
  'list-jobs',
  'forget-job',
] as const;
export type Command = (typeof COMMANDS)[number];

function token(s: string): string {
  if (!s || /[\s*>]/.test(s)) throw new Error(`"${s}" cannot be used in a NATS subject`);
  return s.replace(/\./g, '_');
}

/**
 * Splits a result subject: `node` and `uid` as tokens (a '.' escaped as '_').
 * Results stored before the node joined the subject have no `node`.
 */
export function parseResultSubject(subject: string): { node?: string; uid: string } | undefined {
  const rest = subject.startsWith(`${PREFIX}.result.`) ? subject.slice(`${PREFIX}.result.`.length).split('.') : [];
  if (rest.length === 1 && rest[0]) return { uid: rest[0] };
  if (rest.length === 2 && rest[0] && rest[1]) return { node: rest[0], uid: rest[1] };
  return undefined;
}

/** A name as it appears in a subject token. */
export function subjectToken(s: string): string {
  return token(s);
}

export const subjects = {
  command: (node: string, command: Command) => `${PREFIX}.node.${token(node)}.${command}`,
  nodeCommands: (node: string) => `${PREFIX}.node.${token(node)}.>`,
  progress: (uid: string) => `${PREFIX}.migration.${token(uid)}.progress`,
  allProgress: () => `${PREFIX}.migration.*.progress`,
  /**
   * A source publishes its result under its own node, so NATS permissions can
   * bind a handler's credentials to its results (`nodeResults`), and the
   * controller can check that the node a result names is the one it came from.
   */
  result: (uid: string, node: string) => `${PREFIX}.result.${token(node)}.${token(uid)}`,
  /** Every result of one migration, whichever node published it. */
  resultsOf: (uid: string) => `${PREFIX}.result.*.${token(uid)}`,
  nodeResults: (node: string) => `${PREFIX}.result.${token(node)}.>`,
  allResults: () => `${PREFIX}.result.>`,
  heartbeat: (node: string) => `${PREFIX}.heartbeat.${token(node)}`,
  allHeartbeats: () => `${PREFIX}.heartbeat.*`,
};

/**
 * Reply subjects (request inboxes, JetStream deliveries) of each role. With a
 * prefix of its own, a process's permissions can allow its own replies only:
 * a handler cannot read the controller's (results are delivered there).
 */
export const inboxPrefix = {
  controller: () => '_INBOX_controller',
  handler: (node: string) => `_INBOX_node_${token(node)}`,
};

export const RESULTS_STREAM = 'FERRY_RESULTS';
export const CONTROLLER_DURABLE = 'ferry-controller';
