/**
 * Repository node addresses and the reconnect backoff.
 */

import { CdrError } from '../../services/common/errors.js';

export interface NodeAddress {
  host: string;
  port: number;
}

/**
 * Parses "HOST:PORT", or "[IPV6]:PORT" for an IPv6 address.
 *
 * @throws CdrError `ERR_CONFIG_INVALID` naming the value and the expected form.
 */
export function parseNodeAddress(text: string): NodeAddress {
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+)):([0-9]{1,5})$/.exec(text.trim());
  const port = Number(match?.[3]);
  if (!match || port < 1 || port > 65535) {
    throw new CdrError('ERR_CONFIG_INVALID', `node address must be HOST:PORT or [IPV6]:PORT with a port from 1 to 65535, got ${JSON.stringify(text)}`, {
      details: { value: text },
    });
  }
  return { host: match[1] ?? match[2]!, port };
}

export function formatNodeAddress(node: NodeAddress): string {
  return node.host.includes(':') ? `[${node.host}]:${node.port}` : `${node.host}:${node.port}`;
}

export interface BackoffOptions {
  /** Delay after the first round in which every node failed, in milliseconds. @defaultValue 250 */
  initialMs: number;
  /** Largest delay, in milliseconds. @defaultValue 30000 */
  maxMs: number;
}

/**
 * Returns the delay before the next round of connection attempts: `initialMs` doubled per failed round,
 * capped at `maxMs`, with up to 20 % random jitter so that many IMPs do not reconnect in step.
 */
export function backoffDelay(failedRounds: number, options: BackoffOptions): number {
  const base = Math.min(options.maxMs, options.initialMs * 2 ** Math.max(0, failedRounds - 1));
  return Math.round(base * (0.8 + Math.random() * 0.2));
}
