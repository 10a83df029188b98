/**
 * The software version, read from the package.json at the top of the installation.
 */

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

function findPackageVersion(): string {
  let folder = dirname(fileURLToPath(import.meta.url));
  for (let depth = 0; depth < 6; depth++) {
    try {
      const manifest = JSON.parse(readFileSync(join(folder, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (manifest.name === 'imp-cdr' && manifest.version) {
        return manifest.version;
      }
    } catch {
      // No package.json at this level: look one level up.
    }
    folder = dirname(folder);
  }
  return '0.0.0-unknown';
}

export const SOFTWARE_VERSION = findPackageVersion();
