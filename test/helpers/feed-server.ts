/**
 * An HTTP feed source on 127.0.0.1 that the test controls: it serves `state.body` with `state.etag`,
 * responds 304 to a matching If-None-Match, and counts requests.
 */

import { createServer, type Server } from 'node:http';

export interface FeedServerState {
  body: Buffer;
  etag: string;
  /** Every request received. */
  requests: number;
  /** Requests that got a 304 response. */
  conditional: number;
}

export interface FeedServer {
  server: Server;
  url: string;
  state: FeedServerState;
  close(): void;
}

export async function startFeedServer(body: Buffer, etag: string): Promise<FeedServer> {
  const state: FeedServerState = { body, etag, requests: 0, conditional: 0 };
  const server = createServer((request, response) => {
    state.requests += 1;
    if (request.headers['if-none-match'] === state.etag) {
      state.conditional += 1;
      response.writeHead(304);
      response.end();
      return;
    }
    response.writeHead(200, { etag: state.etag, 'content-length': String(state.body.length) });
    response.end(state.body);
  });
  await new Promise<void>((resolveListen) => server.listen(0, '127.0.0.1', () => resolveListen()));
  const close = () => {
    server.closeAllConnections();
    server.close();
  };
  return { server, url: `http://127.0.0.1:${(server.address() as { port: number }).port}/drop.txt`, state, close };
}
