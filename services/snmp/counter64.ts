/**
 * Counter64 values (RFC 2578 section 7.1.10: 0 to 2^64-1) for the two transports. BER (SNMP over UDP)
 * encodes an integer in two's complement (X.690 section 8.3). A value with the top bit set therefore
 * needs a leading zero octet to stay unsigned. AgentX (RFC 2741 section 5.4) carries a plain 64-bit word.
 */

export const COUNTER64_MAX = 2n ** 64n - 1n;

/** Clamps `value` into the Counter64 range; negative and non-finite numbers become 0. */
export function toCounter64(value: number | bigint | null | undefined): bigint {
  if (typeof value === 'bigint') {
    if (value < 0n) {
      return 0n;
    }
    return value > COUNTER64_MAX ? COUNTER64_MAX : value;
  }
  if (typeof value !== 'number' || !Number.isFinite(value) || value <= 0) {
    return 0n;
  }
  return toCounter64(BigInt(Math.trunc(value)));
}

/**
 * Encodes `value` as the contents octets of a BER INTEGER that decodes as unsigned: the minimum number
 * of octets, plus a leading 0x00 when the top bit of the first octet is set (2^64-1 takes 9 octets).
 */
export function encodeCounter64Ber(value: bigint): Buffer {
  const clamped = toCounter64(value);
  let hex = clamped.toString(16);
  if (hex.length % 2 === 1) {
    hex = `0${hex}`;
  }
  const octets = Buffer.from(hex, 'hex');
  return (octets[0]! & 0x80) === 0 ? octets : Buffer.concat([Buffer.from([0]), octets]);
}
