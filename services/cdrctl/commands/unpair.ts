/**
 * `cdrctl unpair [--local-only]`: forget the peer on both nodes.
 */

import { parseArgs } from 'node:util';

import { EXIT_SUCCESS, usageError, type Command } from '../command.js';
import { unpairPeer, withPairing } from './pair.js';

export const unpairCommand: Command = {
  name: 'unpair',
  usage: [
    'unpair [--local-only]                 forget the peer here and on the peer (over SSH, with the pinned',
    '                                      host key); --local-only forgets it here only, for a dead peer',
  ],
  async run(context, args) {
    const { values, positionals } = parseArgs({ args, options: { 'local-only': { type: 'boolean', default: false } }, allowPositionals: true, strict: true });
    if (positionals.length > 0) throw usageError(`unpair takes no arguments besides --local-only, got "${positionals.join(' ')}"`);
    const localOnly = values['local-only'];

    return withPairing(context, async (client) => {
      await unpairPeer(client, localOnly);
      context.stdout(localOnly ? 'unpaired on this node only; run "cdrctl unpair --local-only" on the peer too if it still runs\n' : 'unpaired on both nodes\n');
      return EXIT_SUCCESS;
    });
  },
};
