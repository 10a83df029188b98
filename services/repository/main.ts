/**
 * Entry point of imp-cdr-repository; the command line is described in services/common/daemon.ts.
 */

import { runDaemon } from '../common/daemon.js';
import { Repository } from './repository.js';

await runDaemon({
  name: 'repository',
  create: (config, log, notifier) => {
    const repository = new Repository(config, log, notifier);
    return {
      start: () => repository.start(),
      stop: () => repository.stop(),
      statusLine: () => repository.statusLine(),
      checkHealth: () => repository.checkHealth(),
    };
  },
});
