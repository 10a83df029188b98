/**
 * Every cdrctl command, in the order the help text lists them.
 */

import type { Command } from '../command.js';
import { clientCommand } from './client.js';
import { feedsCommand } from './feeds.js';
import { lookupCommand } from './lookup.js';
import { policyCommand } from './policy.js';
import { statusCommand } from './status.js';

export const COMMANDS: readonly Command[] = [statusCommand, lookupCommand, clientCommand, policyCommand, feedsCommand];
