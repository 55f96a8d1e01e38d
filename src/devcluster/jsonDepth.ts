/**
 * The real API server decodes JSON with Go's scanner, which refuses nesting
 * deeper than 10000 levels ("exceeded max depth"). This server walks objects
 * recursively (structuredClone, patches, pruning) and would overflow its stack
 * from about 2000 levels, answering 500; it refuses beyond 1000 instead, with
 * the real server's answer. No Kubernetes object comes near either limit.
 * Checking the text before parsing keeps a deep body away from every walker.
 */
export const MAX_NESTING_DEPTH = 1000;

/** The character at which `text` goes deeper than `max` levels of [ and {, outside strings; undefined if it never does. */
export function exceedsDepth(text: string, max = MAX_NESTING_DEPTH): string | undefined {
  let depth = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++; // backslash: skip the escaped character
      else if (c === 0x22) inString = false;
      continue;
    }
    if (c === 0x22) inString = true;
    else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) return text[i];
    } else if (c === 0x5d || c === 0x7d) depth--;
  }
  return undefined;
}
