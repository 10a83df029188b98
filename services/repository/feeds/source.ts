/**
 * Reads a feed's bytes from a file path or an HTTP(S) URL, with a size limit, a timeout and
 * conditional requests (If-None-Match, If-Modified-Since). HTTPS verifies the server certificate
 * against the system CAs, or against the feed's own CA certificates when it has them.
 */

import { open } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';

import { CdrError } from '../../common/errors.js';

/** Redirects followed before a fetch fails. */
export const MAX_REDIRECTS = 5;

export interface FetchOptions {
  source: string;
  maxBytes: number;
  timeoutMs: number;
  /** Validators of the version in force, sent so that an unchanged source answers 304. */
  etag?: string;
  lastModified?: string;
  /** PEM certificates that HTTPS trusts instead of the system CAs, or empty or absent for the system CAs. */
  caPem?: string;
}

export type FetchResult =
  | { changed: false }
  | { changed: true; bytes: Buffer; etag?: string; lastModified?: string };

/**
 * OpenSSL and Node.js codes of a server certificate that does not verify. A fetch that fails with
 * one of them fails with `ERR_FEED_TLS`.
 */
const CERTIFICATE_ERRORS = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'CERT_REVOKED',
  'INVALID_CA',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

/**
 * Fetches the source. A file is read whole; a URL is fetched with GET, following up to
 * MAX_REDIRECTS redirects, and its body read up to `maxBytes`.
 *
 * @throws CdrError `ERR_FEED_FETCH`, `ERR_FEED_TIMEOUT`, `ERR_FEED_TOO_LARGE`, `ERR_FEED_TRUNCATED`
 *   (body shorter than its Content-Length, or the connection closed early), `ERR_FEED_TLS` (the
 *   server certificate does not verify)
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

  // One deadline for every redirect and the whole body.
  const signal = AbortSignal.timeout(options.timeoutMs);
  let url = options.source;
  try {
    for (let redirects = 0; ; redirects += 1) {
      const response = await get(url, headers, signal, options.caPem);
      const status = response.statusCode ?? 0;

      if ([301, 302, 303, 307, 308].includes(status) && response.headers.location) {
        response.resume();
        if (redirects >= MAX_REDIRECTS) {
          throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} was redirected more than ${MAX_REDIRECTS} times; check the feed source URL`, {
            details: { source: options.source, status },
          });
        }
        url = new URL(response.headers.location, url).toString();
        if (!/^https?:\/\//i.test(url)) {
          throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} was redirected to ${url}, which is not an http:// or https:// URL`, { details: { source: options.source } });
        }
        continue;
      }
      if (status === 304) {
        response.resume();
        return { changed: false };
      }
      if (status !== 200) {
        response.resume();
        const reason = response.statusMessage ? ` ${response.statusMessage}` : '';
        throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} returned status ${status}${reason}; expected 200 or 304`, {
          details: { source: options.source, status },
        });
      }

      const announced = Number(response.headers['content-length'] ?? NaN);
      if (announced > options.maxBytes) {
        response.destroy();
        throw tooLarge(options.source, announced, options.maxBytes);
      }
      const bytes = await readBodyLimited(response, options.source, options.maxBytes);
      if (Number.isFinite(announced) && bytes.length < announced) {
        throw new CdrError('ERR_FEED_TRUNCATED', `GET ${options.source} returned ${bytes.length} bytes of the ${announced} announced; the version in force stays`, {
          details: { source: options.source, received: bytes.length, announced },
        });
      }
      const etag = headerValue(response, 'etag');
      const lastModified = headerValue(response, 'last-modified');
      return { changed: true, bytes, ...(etag ? { etag } : {}), ...(lastModified ? { lastModified } : {}) };
    }
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
    const code = (error as NodeJS.ErrnoException).code ?? '';
    if (CERTIFICATE_ERRORS.has(code)) {
      const fix = options.caPem
        ? 'check that the feed CA (cdrctl feeds add --ca) issued the server certificate and that it names the host'
        : 'remove the feed and add it again with --ca FILE naming the CA that issued the certificate';
      throw new CdrError('ERR_FEED_TLS', `GET ${url}: the server certificate does not verify (${code}: ${(error as Error).message}); ${fix}`, {
        cause: error,
        details: { source: options.source, tlsCode: code },
      });
    }
    if (code === 'ECONNRESET' || code === 'ERR_STREAM_PREMATURE_CLOSE' || (error as Error).message === 'aborted') {
      throw new CdrError('ERR_FEED_TRUNCATED', `GET ${options.source}: the connection closed before the body was complete; the version in force stays`, {
        cause: error,
        details: { source: options.source },
      });
    }
    throw new CdrError('ERR_FEED_FETCH', `GET ${options.source} failed: ${code ? `${code}: ` : ''}${(error as Error).message}`, {
      cause: error,
      details: { source: options.source },
    });
  }
}

/** Sends one GET and resolves with the response head, leaving the body unread. */
function get(url: string, headers: Record<string, string>, signal: AbortSignal, caPem: string | undefined): Promise<IncomingMessage> {
  return new Promise((resolveResponse, rejectResponse) => {
    const https = url.toLowerCase().startsWith('https:');
    // No connection is reused between fetches, so every fetch verifies the server certificate again.
    const options = { method: 'GET', headers, signal, agent: false as const, ...(https && caPem ? { ca: caPem } : {}) };
    const request = https ? httpsRequest(url, options) : httpRequest(url, options);
    request.once('response', resolveResponse);
    request.once('error', rejectResponse);
    request.end();
  });
}

async function readBodyLimited(response: IncomingMessage, source: string, maxBytes: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let total = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    total += chunk.length;
    if (total > maxBytes) {
      response.destroy();
      throw tooLarge(source, total, maxBytes);
    }
    chunks.push(chunk);
  }
  // A connection closed before the announced length can end the stream without an error, so
  // `complete` decides whether the whole message arrived.
  if (!response.complete) {
    throw new CdrError('ERR_FEED_TRUNCATED', `GET ${source}: the connection closed before the body was complete; the version in force stays`, {
      details: { source, received: total },
    });
  }
  return Buffer.concat(chunks);
}

function headerValue(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

function tooLarge(source: string, size: number, maxBytes: number): CdrError {
  return new CdrError('ERR_FEED_TOO_LARGE', `${source} has at least ${size} bytes, more than the feed's maxBytes of ${maxBytes}; raise maxBytes or check the source`, {
    details: { source, size, maxBytes },
  });
}
