/**
 * DateAndTime (SNMPv2-TC, RFC 2579) in its 11-octet form with the UTC offset, always UTC here.
 */

/** Eight zero octets: the value the MIB uses for "never". */
export const DATE_AND_TIME_NEVER = Buffer.alloc(8);

/**
 * Encodes a time in milliseconds since the epoch: year (2 octets, big-endian), month, day, hour,
 * minutes, seconds, deciseconds, then '+', 0, 0 for UTC. A value of 0 or less returns
 * DATE_AND_TIME_NEVER.
 */
export function encodeDateAndTime(epochMs: number): Buffer {
  if (!Number.isFinite(epochMs) || epochMs <= 0) {
    return DATE_AND_TIME_NEVER;
  }
  const date = new Date(epochMs);
  const octets = Buffer.alloc(11);
  octets.writeUInt16BE(date.getUTCFullYear(), 0);
  octets[2] = date.getUTCMonth() + 1;
  octets[3] = date.getUTCDate();
  octets[4] = date.getUTCHours();
  octets[5] = date.getUTCMinutes();
  octets[6] = date.getUTCSeconds();
  octets[7] = Math.floor(date.getUTCMilliseconds() / 100);
  octets[8] = '+'.charCodeAt(0);
  return octets;
}
