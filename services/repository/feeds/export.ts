/**
 * Exports of the feeds in force: an rbldnsd `combined` dataset with one subzone per feed, and JSON
 * Lines with one entry a line.
 */

import { createWriteStream } from 'node:fs';
import { rename, rm, stat } from 'node:fs/promises';
import { isAbsolute } from 'node:path';
import { once } from 'node:events';

import { CdrError } from '../../common/errors.js';
import type { Dataset } from './dataset.js';
import type { FeedDefinition, } from './definition.js';
import type { FeedVersion } from './feed-manager.js';

export const EXPORT_FORMATS = ['rbldnsd', 'jsonl'] as const;
export type ExportFormat = (typeof EXPORT_FORMATS)[number];

interface ExportFeed {
  definition: FeedDefinition;
  dataset: Dataset;
  version: FeedVersion;
}

/**
 * Writes the export to `path` through `path.tmp` and a rename, so a reader never sees half a file.
 *
 * In the rbldnsd export each feed is a `$DATASET` section (ip4trie, ip6trie or dnset) whose subzone is
 * the feed id; load it with `rbldnsd ... zone:combined:FILE`. An ip4set feed is written with the
 * octet-aligned prefixes it is stored as, which an ip4trie answers the same way.
 * NOTE: where several ip4set entries cover one key, only the first entry's value is exported.
 *
 * @throws CdrError `ERR_FEED_EXPORT` for a relative path, an unknown format or a write that failed
 */
export async function writeExport(feeds: ExportFeed[], format: string, path: string): Promise<{ entries: number; bytes: number }> {
  if (!EXPORT_FORMATS.includes(format as ExportFormat)) {
    throw new CdrError('ERR_FEED_EXPORT', `export format must be one of ${EXPORT_FORMATS.join(', ')}, got ${JSON.stringify(format)}`, { details: { format } });
  }
  if (!isAbsolute(path)) {
    throw new CdrError('ERR_FEED_EXPORT', `export path must be absolute, got ${JSON.stringify(path)}`, { details: { path } });
  }

  const temporary = `${path}.tmp`;
  const stream = createWriteStream(temporary, { mode: 0o644 });
  let entries = 0;
  const write = async (text: string) => {
    if (!stream.write(text, 'latin1')) {
      await once(stream, 'drain');
    }
  };

  try {
    for (const { definition, dataset: feedDataset, version } of feeds) {
      // NOTE: the sections of a combined feed are exported as one dataset, so their entries merge.
      for (const dataset of feedDataset.members()) {
        if (format === 'rbldnsd') {
          await write(`# feed ${definition.id} version ${version.version}, ${definition.source}, category ${definition.category}\n`);
          for (const type of ['ip4trie', 'ip6trie', 'dnset'] as const) {
            const lines: string[] = [];
            for (const { entry, value } of dataset.allEntries()) {
              if (entryType(entry) !== type) {
                continue;
              }
              lines.push(value ? `${entry} :${value.a}:${value.txt ?? ''}` : `!${entry}`);
            }
            if (lines.length > 0) {
              await write(`$DATASET ${type}:${definition.id} ${definition.id}\n`);
              if (dataset.ttl !== undefined) {
                await write(`$TTL ${dataset.ttl}\n`);
              }
              for (const line of lines) {
                await write(`${line}\n`);
                entries += 1;
              }
            }
          }
        } else {
          for (const { entry, value } of dataset.allEntries()) {
            const record = value
              ? { feed: definition.id, category: definition.category, entry, excluded: false, returnCode: value.a, txt: value.txt ?? null, version: version.version }
              : { feed: definition.id, category: definition.category, entry, excluded: true, version: version.version };
            await write(`${JSON.stringify(record)}\n`);
            entries += 1;
          }
        }
      }
    }
    stream.end();
    await once(stream, 'finish');
    await rename(temporary, path);
  } catch (error) {
    stream.destroy();
    await rm(temporary, { force: true });
    throw new CdrError('ERR_FEED_EXPORT', `writing the export to ${path} failed: ${(error as Error).message}`, { cause: error, details: { path } });
  }
  return { entries, bytes: (await stat(path)).size };
}

function entryType(entry: string): 'ip4trie' | 'ip6trie' | 'dnset' {
  if (entry.includes('/')) {
    return entry.includes(':') ? 'ip6trie' : 'ip4trie';
  }
  return 'dnset';
}
