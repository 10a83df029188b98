/**
 * Entry point of imp-cdr-snmp, the IMP-CDR-MIB agent; the command line is described in
 * services/common/daemon.ts.
 *
 * `snmp.mode` in the configuration selects the AgentX subagent (default, under snmpd) or the
 * standalone SNMPv3 agent. The process reads the repository through its control socket. While the
 * repository is down it keeps serving requests, with impCdrNodeState unreachable.
 */

import { runDaemon } from '../common/daemon.js';
import { SnmpService } from './service.js';
import { snmpSettingsOf } from './settings.js';

await runDaemon({
  name: 'snmp',
  create: (config, log) => {
    const settings = snmpSettingsOf(config);
    log.info({ mode: settings.mode }, 'SNMP mode');
    const service = new SnmpService(config, settings, log);
    return {
      start: async () => {
        await service.start();
        await service.ready();
        log.info({ engineId: service.engineId }, 'snmp agent ready');
      },
      stop: () => service.stop(),
      statusLine: () => `serving IMP-CDR-MIB (${settings.mode})`,
      // The agent answers from its last snapshot even while the repository is down, so the watchdog
      // check is only that the event loop runs.
      checkHealth: async () => undefined,
    };
  },
  stopTimeoutMs: (config) => config.shutdown.timeoutMs,
});
