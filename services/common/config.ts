/**
 * Loading of `cdr.yaml`: parse, check against the schema, merge over the defaults, resolve paths, freeze.
 */

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';

import { stringify } from 'yaml';

import { CONFIG_SCHEMA, DEFAULT_CONFIG, DEVELOPMENT_PATHS, type CdrConfig } from './config-schema.js';
import { CdrError } from './errors.js';
import { parseYamlWithSchema } from './yaml-schema.js';

export type { CdrConfig, LogLevel } from './config-schema.js';
export { DEFAULT_CONFIG } from './config-schema.js';

/** Configuration path on an appliance. */
export const PRODUCTION_CONFIG_PATH = '/etc/imp-cdr/cdr.yaml';

/** Configuration path in development, relative to the working folder. */
export const DEVELOPMENT_CONFIG_PATH = 'var/cdr.yaml';

/** A loaded configuration and the file it came from. */
export interface LoadedConfig {
  config: Readonly<CdrConfig>;
  path: string;
}

/**
 * Reads, checks and freezes the configuration at `path`. Relative paths inside it are resolved against
 * the folder of the file.
 *
 * @throws CdrError `ERR_CONFIG_NOT_FOUND`, `ERR_CONFIG_PARSE`, `ERR_CONFIG_UNKNOWN_KEY` or
 *   `ERR_CONFIG_INVALID`, with the key, the expected form and the line.
 */
export function loadConfig(path: string): LoadedConfig {
  const absolutePath = resolve(path);

  let text: string;
  try {
    text = readFileSync(absolutePath, 'utf8');
  } catch (error) {
    throw new CdrError('ERR_CONFIG_NOT_FOUND', `cannot read configuration ${absolutePath}: ${(error as Error).message}`, {
      cause: error,
      details: { path: absolutePath },
    });
  }

  return { config: parseConfig(text, absolutePath), path: absolutePath };
}

/** Checks configuration text; `sourcePath` names the file in errors and anchors relative paths. */
export function parseConfig(text: string, sourcePath: string): Readonly<CdrConfig> {
  const partial = parseYamlWithSchema(text, sourcePath, CONFIG_SCHEMA, {
    parse: 'ERR_CONFIG_PARSE',
    invalid: 'ERR_CONFIG_INVALID',
    unknownKey: 'ERR_CONFIG_UNKNOWN_KEY',
  }) as Partial<Record<keyof CdrConfig, Record<string, unknown>>>;

  const merged = mergeSections(DEFAULT_CONFIG, partial);
  const base = dirname(resolve(sourcePath));
  merged.paths.state = resolve(base, merged.paths.state);
  merged.paths.run = resolve(base, merged.paths.run);
  merged.firmware.publicKey = resolve(base, merged.firmware.publicKey);

  return deepFreeze(merged);
}

/**
 * Writes the development configuration to `path` when no file exists there, and returns whether it did.
 * It holds every default, with paths under the folder of the file, so an operator sees every key.
 */
export function ensureDevelopmentConfig(path: string): boolean {
  if (existsSync(path)) {
    return false;
  }

  // Bundles built in the checkout (make bundle) are signed with the development key under var/.
  const config: CdrConfig = {
    ...structuredClone(DEFAULT_CONFIG),
    paths: { ...DEVELOPMENT_PATHS },
    firmware: { ...DEFAULT_CONFIG.firmware, publicKey: 'firmware-dev-key/release-key.pem' },
  };
  const header =
    '# IMP-CDR development configuration, written from the embedded defaults on first run.\n' +
    '# Relative paths are resolved against the folder of this file.\n';
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, header + stringify(config), { flag: 'wx' });
  return true;
}

/** Resolves `path` against `base` unless it is absolute. */
export function resolveUnder(base: string, path: string): string {
  return isAbsolute(path) ? path : resolve(base, path);
}

function mergeSections(
  defaults: CdrConfig,
  partial: Partial<Record<keyof CdrConfig, Record<string, unknown>>>,
): CdrConfig {
  return mergeDeep(structuredClone(defaults) as unknown as Record<string, unknown>, partial) as unknown as CdrConfig;
}

/** Merges plain objects key by key at every depth; arrays and scalars from `override` replace the default. */
function mergeDeep(base: Record<string, unknown>, override: Record<string, unknown>): Record<string, unknown> {
  for (const [key, value] of Object.entries(override)) {
    const current = base[key];
    const bothObjects =
      value !== null && typeof value === 'object' && !Array.isArray(value) && current !== null && typeof current === 'object' && !Array.isArray(current);
    base[key] = bothObjects ? mergeDeep(current as Record<string, unknown>, value as Record<string, unknown>) : value;
  }
  return base;
}

function deepFreeze<T>(value: T): Readonly<T> {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) {
      deepFreeze(child);
    }
    Object.freeze(value);
  }
  return value;
}
