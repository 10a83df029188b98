/**
 * Fix for net-snmp 3.29.2's agent. A GetNext or GetBulk whose start OID lies after the last object and
 * is not itself in the agent's tree (for example 1.3.6.1.4.1.32474) gets noSuchObject in the response.
 * The cause is that the request handler looks the start OID up again after addGetNextVarbind marked it
 * endOfMibView. RFC 3416 section 4.2.2 requires endOfMibView there.
 */

import snmp from 'net-snmp';

interface RequestMessage {
  pdu: { type: number; varbinds: { type?: number }[] };
}

interface AgentInternals {
  request(socket: unknown, message: RequestMessage, rinfo: unknown): void;
  setSingleVarbind(responsePdu: unknown, index: number, varbind: { type?: number; value?: unknown }): void;
}

/**
 * Wraps `agent`'s request processing so that varbinds that addGetNextVarbind marked endOfMibView keep
 * that type in the response. It relies on net-snmp processing a request synchronously, which is the
 * case while no provider has an asynchronous handler (none of IMP-CDR-MIB's has one).
 */
export function keepEndOfMibView(agent: unknown): void {
  const internals = agent as AgentInternals;
  const request = internals.request.bind(internals);
  const setSingleVarbind = internals.setSingleVarbind.bind(internals);
  let endOfMibIndexes: Set<number> | undefined;

  internals.request = (socket, message, rinfo) => {
    const type = message.pdu.type;
    if (type === snmp.PduType.GetNextRequest || type === snmp.PduType.GetBulkRequest) {
      endOfMibIndexes = new Set(message.pdu.varbinds.flatMap((varbind, index) => (varbind.type === snmp.ObjectType.EndOfMibView ? [index] : [])));
    }
    try {
      request(socket, message, rinfo);
    } finally {
      endOfMibIndexes = undefined;
    }
  };

  internals.setSingleVarbind = (responsePdu, index, varbind) => {
    if (endOfMibIndexes?.has(index)) {
      varbind.type = snmp.ObjectType.EndOfMibView;
      varbind.value = null;
    }
    setSingleVarbind(responsePdu, index, varbind);
  };
}
