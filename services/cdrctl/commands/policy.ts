/**
 * `cdrctl policy show | set FILE`: the reputation policy in force.
 */

import { readFileSync } from 'node:fs';

import { CdrError } from '../../common/errors.js';
import type { ControlClient } from '../../../modules/protocol/control-client.js';
import { EXIT_SUCCESS, usageError, withControl, type Command, type CommandContext } from '../command.js';

export const policyCommand: Command = {
  name: 'policy',
  usage: [
    'policy show                           print the reputation policy in force',
    'policy set FILE                       validate FILE and make it the policy in force',
  ],
  async run(context, args) {
    return withControl(context, (client) => policy(context, client, args));
  },
};

async function policy(context: CommandContext, client: ControlClient, args: string[]): Promise<number> {
  const [subcommand, file] = args;
  if (subcommand === 'show' && args.length === 1) {
    const { policy: document } = await client.call({ policyShow: {} });
    context.stdout(`# version ${document!.version}, applied ${new Date(Number(document!.appliedMs)).toISOString()}\n${document!.yaml}`);
    return EXIT_SUCCESS;
  }
  if (subcommand === 'set' && file && args.length === 2) {
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (error) {
      throw new CdrError('ERR_CLI_USAGE', `cannot read ${file}: ${(error as Error).message}`, { cause: error });
    }
    // `policy show` starts with a header line naming the version in force; it is not part of the policy.
    const yaml = text.replace(/^# version \d+, applied \S+\n/, '');
    const { policy: document } = await client.call({ policySet: { yaml, sourceName: file } });
    context.stdout(`policy version ${document!.version} is in force\n`);
    return EXIT_SUCCESS;
  }
  throw usageError(
    subcommand === 'show' || subcommand === 'set'
      ? `policy ${subcommand} takes ${subcommand === 'show' ? 'no arguments' : 'exactly one FILE'}, got ${args.length - 1}`
      : 'policy needs a subcommand: show or set FILE',
  );
}

