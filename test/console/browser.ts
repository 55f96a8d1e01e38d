import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

/**
 * Debian's Chromium (scripts/setup.sh installs it), driven by playwright-core:
 * playwright's own browser download cannot run here. The flags keep a headless
 * Chromium off the network (this machine has none) and out of the way of
 * other tests.
 */
export const CHROMIUM = process.env['FERRY_CHROMIUM'] ?? '/usr/bin/chromium';

export async function launchChromium(): Promise<Browser> {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: run scripts/setup.sh as root (installs Debian's chromium), or set FERRY_CHROMIUM`);
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/** Screenshots are kept as test artifacts (gitignored). */
export function artifactPath(name: string): string {
  const dir = path.resolve(import.meta.dirname, '../../test-artifacts');
  mkdirSync(dir, { recursive: true });
  return path.join(dir, name);
}
