/**
 * Binding of TCP listeners, shared by the daemons.
 */

import type { Server } from 'node:net';

/**
 * Starts `server` listening on `host`:`port` and resolves with the bound address, which differs from
 * the requested one when `port` is 0. Rejects with the listen error (for example EADDRINUSE).
 */
export function listenTcp(server: Server, host: string, port: number): Promise<{ host: string; port: number }> {
  return new Promise((resolveListen, rejectListen) => {
    server.once('error', rejectListen);
    server.listen(port, host, () => {
      server.off('error', rejectListen);
      const address = server.address();
      resolveListen(typeof address === 'object' && address ? { host: address.address, port: address.port } : { host, port });
    });
  });
}
