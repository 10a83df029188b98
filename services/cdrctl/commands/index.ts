/**
 * Every cdrctl command, in the order the help text lists them.
 */

import type { Command } from '../command.js';
import { auditCommand } from './audit.js';
import { clientCommand } from './client.js';
import { consoleCommand } from './console.js';
import { firmwareCommand } from './firmware.js';
import { hwCommand } from './hw.js';
import { feedsCommand } from './feeds.js';
import { lookupCommand } from './lookup.js';
import { pairCommand } from './pair.js';
import { policyCommand } from './policy.js';
import { statusCommand } from './status.js';
import { unpairCommand } from './unpair.js';

export const COMMANDS: readonly Command[] = [
  statusCommand,
  lookupCommand,
  clientCommand,
  policyCommand,
  pairCommand,
  unpairCommand,
  auditCommand,
  hwCommand,
  firmwareCommand,
  consoleCommand,
  feedsCommand,
];
