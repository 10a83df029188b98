/**
 * Reads a feed's bytes from a file path or an HTTP(S) URL, with a size limit, a timeout and
 * conditional requests (If-None-Match, If-Modified-Since).
 */

import { open } from 'node:fs/promises';

import { CdrError } from '../../common/errors.js';

export interface FetchOptions {
  source: string;
  maxBytes: number;
  timeoutMs: number;
  /** Validators of the version in force, sent so that an unchanged source answers 304. */
  etag?: string;
  lastModified?: string;
}

export type FetchResult =
  | { changed: false }
  | { changed: true; bytes: Buffer; etag?: string; lastModified?: string };

/**
 * Fetches the source. A file is read whole; a URL is fetched with GET and its body read up to
 * `maxBytes`.
 *
 * @throws CdrError `ERR_FEED_FETCH`, `ERR_FEED_TIMEOUT`, `ERR_FEED_TOO_LARGE`, `ERR_FEED_TRUNCATED`
 *   (body shorter than its Content-Length)
 */
export async function fetchSource(options: FetchOptions): Promise<FetchResult> {
  if (/^https?:\/\//i.test(options.source)) {
    return fetchUrl(options);
  }
  return { changed: true, bytes: await readFileLimited(options.source, options.maxBytes) };
}

async function readFileLimited(path: string, maxBytes: number): Promise<Buffer> {
  let handle;
  try {
    handle = await open(path, 'r');
  } catch (error) {
    throw new CdrError('ERR_FEED_FETCH', `cannot open ${path}: ${(error as Error).message}; check the feed source path`, { cause: error, details: { source: path } });
  }
  try {
    const { size } = await handle.stat();
    if (size > maxBytes) {
      throw tooLarge(path, size, maxBytes);
    }
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}

async function fetchUrl(options: FetchOptions): Promise<FetchResult> {
  const headers: Record<string, string> = { 'user-agent': 'imp-cdr-feeds' };
  if (options.etag) {
    headers['if-none-match'] = options.etag;
  }
  if (options.lastModified) {
    headers['if-modified-since'] = options.lastModified;
  }

  const signal = AbortSignal.timeout(options.timeoutMs);
  try {
    const response = await fetch(options.source, { headers, signal, redirect: 'follow' });
    if (response.status === 304) {
      await response.body?.cancel();
      return { changed: false };
    }
    if (!response.ok) {
      await response.body?.cancel();
      throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} returned status ${response.status} ${response.statusText}; expected 200 or 304`, {
        details: { source: options.source, status: response.status },
      });
    }

    const announced = Number(response.headers.get('content-length') ?? NaN);
    if (announced > options.maxBytes) {
      await response.body?.cancel();
      throw tooLarge(options.source, announced, options.maxBytes);
    }
    const bytes = await readBodyLimited(response, options.source, options.maxBytes);
    if (Number.isFinite(announced) && bytes.length < announced && !response.headers.get('content-encoding')) {
      throw new CdrError('ERR_FEED_TRUNCATED', `GET ${options.source} returned ${bytes.length} bytes of the ${announced} announced; the version in force stays`, {
        details: { source: options.source, received: bytes.length, announced },
      });
    }
    return {
      changed: true,
      bytes,
      ...(response.headers.get('etag') ? { etag: response.headers.get('etag')! } : {}),
      ...(response.headers.get('last-modified') ? { lastModified: response.headers.get('last-modified')! } : {}),
    };
  } catch (error) {
    if (error instanceof CdrError) {
      throw error;
    }
    if (signal.aborted) {
      throw new CdrError('ERR_FEED_TIMEOUT', `GET ${options.source} did not finish within ${options.timeoutMs} ms; the version in force stays`, {
        cause: error,
        details: { source: options.source, timeoutMs: options.timeoutMs },
      });
    }
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const code = cause?.code ?? '';
    if (code === 'UND_ERR_SOCKET' || /terminated|other side closed/i.test(String((error as Error).message) + String(cause?.message ?? ''))) {
      throw new CdrError('ERR_FEED_TRUNCATED', `GET ${options.source}: the connection closed before the body was complete; the version in force stays`, {
        cause: error,
        details: { source: options.source },
      });
    }
    throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} failed: ${cause?.message ?? (error as Error).message}`, {
      cause: error,
      details: { source: options.source },
    });
  }
}

async function readBodyLimited(response: Response, source: string, maxBytes: number): Promise<Buffer> {
  if (!response.body) {
    return Buffer.alloc(0);
  }
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
    total += chunk.byteLength;
    if (total > maxBytes) {
      await response.body.cancel().catch(() => {});
      throw tooLarge(source, total, maxBytes);
    }
    chunks.push(Buffer.from(chunk));
  }
  return Buffer.concat(chunks);
}

function tooLarge(source: string, size: number, maxBytes: number): CdrError {
  return new CdrError('ERR_FEED_TOO_LARGE', `${source} has at least ${size} bytes, more than the feed's maxBytes of ${maxBytes}; raise maxBytes or check the source`, {
    details: { source, size, maxBytes },
  });
}
