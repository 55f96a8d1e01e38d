import v8 from 'node:v8';

/**
 * How far V8 lets the heap grow past what survived the last full collection
 * before collecting again, in percent. V8's own choice on a machine with
 * memory to spare is up to 300 % (4×), so a controller whose caches hold
 * about 100 MB (2,000 VMIs with their pods) peaked at 400-760 MB of RSS while
 * a full collection left 80-110 MB. At 50 % the peak follows the live set at
 * about 1.5× plus the young generation, for a few more full collections
 * (mostly concurrent, on V8's background thread).
 */
export const CONTROLLER_HEAP_GROWING_PERCENT = 50;

/**
 * Applies the controller's heap growth, unless the operator chose one
 * (`--heap-growing-percent` in NODE_OPTIONS or on the command line wins).
 * Returns what is in effect, or undefined when the operator's setting is.
 */
export function limitHeapGrowth(percent = CONTROLLER_HEAP_GROWING_PERCENT, env: NodeJS.ProcessEnv = process.env, execArgv: readonly string[] = process.execArgv): number | undefined {
  const chosen = [...execArgv, ...(env['NODE_OPTIONS'] ?? '').split(/\s+/)].some((a) => /^--heap[-_]growing[-_]percent\b/.test(a));
  if (chosen) return undefined;
  v8.setFlagsFromString(`--heap-growing-percent=${percent}`);
  return percent;
}
