/**
 * Entry point of imp-cdr-pairing; the command line is described in services/common/daemon.ts. It reads
 * the same configuration file as the repository: the `pairing` section, the paths, and the
 * repository's control socket.
 */

import { runDaemon } from '../common/daemon.js';
import { PairingDaemon } from './daemon.js';

await runDaemon({
  name: 'pairing',
  create: (config, log) => {
    const daemon = new PairingDaemon(config, log);
    return {
      start: () => daemon.start(),
      stop: () => daemon.stop(),
      statusLine: () => 'waiting for a pairing window',
      // The SSH listener accepts only during a pairing window; the watchdog check is that the event loop runs.
      checkHealth: async () => undefined,
    };
  },
});
