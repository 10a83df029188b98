/**
 * Fix for net-snmp 3.29.2's AgentX encoder: `AgentXPdu.writeOctetString` writes the value with
 * SmartBuffer.writeString, which throws on a Buffer and counts characters instead of octets for text
 * outside ASCII. IMP-CDR-MIB sends binary octet strings (DateAndTime) and UTF-8 text, so this module
 * replaces the encoder, once, with one that writes the exact octets (RFC 2741 section 5.3: a 4-octet
 * length, the octets, then padding to a multiple of 4).
 */

import snmp from 'net-snmp';

interface SmartBufferWriter {
  writeUInt32BE(value: number): unknown;
  writeBuffer(value: Buffer): unknown;
  writeUInt8(value: number): unknown;
}

const agentxPdu = (snmp as unknown as { AgentXPdu: { writeOctetString: (buffer: SmartBufferWriter, value: unknown) => void } }).AgentXPdu;

agentxPdu.writeOctetString = (buffer: SmartBufferWriter, value: unknown): void => {
  const octets = Buffer.isBuffer(value) ? value : Buffer.from(String(value ?? ''), 'utf8');
  buffer.writeUInt32BE(octets.length);
  buffer.writeBuffer(octets);
  const padding = (4 - (octets.length % 4)) % 4;
  for (let position = 0; position < padding; position++) {
    buffer.writeUInt8(0);
  }
};
