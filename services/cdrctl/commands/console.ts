/**
 * `cdrctl console [--network-root DIR] [--root DIR] [--default-config FILE]`: the technician console
 * menu (firmware/console.ts).
 */

import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';

import { runConsole } from '../../../firmware/console.js';
import { PACKAGED_DEFAULT_CONFIG_PATH } from '../../../firmware/factory-reset.js';
import { checkHardware } from '../../../hw/check.js';
import { readHardwareFacts } from '../../../hw/detect.js';
import { resolveUnder } from '../../common/config.js';
import { configPathFor, EXIT_FAILURE, EXIT_SUCCESS, type Command } from '../command.js';

export const consoleCommand: Command = {
  name: 'console',
  usage: [
    'console [--network-root DIR] [--root DIR] [--default-config FILE]',
    `                                      technician menu; DIR defaults: /etc/systemd/network and /;`,
    `                                      FILE is what factory reset restores (${PACKAGED_DEFAULT_CONFIG_PATH})`,
  ],
  async run(context, args) {
    const { values } = parseArgs({
      args,
      options: {
        'network-root': { type: 'string', default: '/etc/systemd/network' },
        root: { type: 'string', default: '/' },
        'default-config': { type: 'string', default: PACKAGED_DEFAULT_CONFIG_PATH },
      },
      strict: true,
    });
    const config = context.loadConfig();
    // Ctrl-C reaches readline as a keypress on a terminal; this keeps a SIGINT sent by other means from ending the console.
    process.on('SIGINT', () => undefined);
    const outcome = await runConsole({
      networkRoot: values['network-root'],
      stateDir: join(config.paths.state, 'console'),
      firmwareDir: join(config.paths.state, 'firmware'),
      controlSocketPath: resolveUnder(config.paths.run, config.control.socket),
      pairingSocketPath: resolveUnder(config.paths.run, config.pairing.socket),
      configPath: resolve(configPathFor(context.configPath)),
      config,
      defaultConfigPath: resolve(values['default-config']),
      hardware: checkHardware(readHardwareFacts(values.root), { allowUnsupported: true }),
      checkHardwareForApply: () => checkHardware(readHardwareFacts(values.root), { allowUnsupported: false }),
      firmwarePublicKeyPath: config.firmware.publicKey,
      firmwareReadyTimeoutMs: config.firmware.readyTimeoutMs,
      input: process.stdin,
      output: process.stdout,
    });
    // The console has already printed that the input ended and nothing was saved.
    return outcome === 'first-boot-incomplete' ? EXIT_FAILURE : EXIT_SUCCESS;
  },
};
