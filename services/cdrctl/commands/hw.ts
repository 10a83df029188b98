/**
 * `cdrctl hw check [--root DIR] [--allow-unsupported] [--json]`: checks this node's hardware against
 * its profile (O550) and prints each check. Exit status 0 on pass or accepted override, 1 on failure.
 */

import { existsSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { checkHardware, type HardwareReport } from '../../../hw/check.js';
import { readHardwareFacts } from '../../../hw/detect.js';
import { createLogger } from '../../common/logger.js';
import { EXIT_FAILURE, EXIT_SUCCESS, usageError, type Command, type CommandContext } from '../command.js';

export const hwCommand: Command = {
  name: 'hw',
  usage: [
    'hw check [--root DIR] [--allow-unsupported] [--json]',
    '                                      check DMI, cores, memory, disk and interface roles against the O550',
    '                                      profile; DIR (default /) contains sys/ and proc/',
  ],
  async run(context, args) {
    const [subcommand, ...rest] = args;
    if (subcommand !== 'check') {
      throw usageError(subcommand === undefined ? 'hw needs a subcommand: check' : `unknown hw subcommand "${subcommand}"; expected check`);
    }
    const { values } = parseArgs({
      args: rest,
      options: {
        root: { type: 'string', default: '/' },
        'allow-unsupported': { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
      },
      strict: true,
    });

    if (!existsSync(values.root)) {
      throw usageError(`--root ${values.root} does not exist; give the folder that contains sys/ and proc/`);
    }
    const report = runHardwareCheck(values.root, values['allow-unsupported']);
    printReport(context, report, values.json);
    return report.verdict === 'fail' ? EXIT_FAILURE : EXIT_SUCCESS;
  },
};

/**
 * Reads the facts under `root` and checks them. An accepted override is logged as a warning on stderr
 * (journald on the appliance), with the model and every check it overrode.
 */
export function runHardwareCheck(root: string, allowUnsupported: boolean): HardwareReport {
  const report = checkHardware(readHardwareFacts(root), { allowUnsupported });
  if (report.verdict === 'override') {
    const overridden = report.checks.filter((check) => check.status === 'warn').map((check) => ({ check: check.name, code: check.code, message: check.message }));
    createLogger('cdrctl', 'info', 2).warn({ model: report.model, root, overridden }, 'hardware check accepted by --allow-unsupported on unsupported hardware');
  }
  return report;
}

function printReport(context: CommandContext, report: HardwareReport, json: boolean): void {
  if (json) {
    context.stdout(`${JSON.stringify(report, null, 2)}\n`);
    return;
  }
  const verdicts = { pass: 'PASS', override: 'PASS BY OVERRIDE', fail: 'FAIL' } as const;
  const lines = [`hardware check: ${verdicts[report.verdict]} (${report.model})`];
  for (const check of report.checks) {
    lines.push(`  ${check.name.padEnd(22)} ${check.status.padEnd(4)}  ${check.message}${check.code ? ` (${check.code})` : ''}`);
  }
  context.stdout(`${lines.join('\n')}\n`);
}
