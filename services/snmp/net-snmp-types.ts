/**
 * The parts of net-snmp 3.29.2's Agent and Subagent classes that this service uses, which
 * @types/net-snmp declares as `any`.
 */

import type { Socket as UdpSocket } from 'node:dgram';
import type { Socket } from 'node:net';

import type { MibLike } from './mib-model.js';

/** Callback of an AgentX administrative PDU; `response.error` is the AgentX error code (0 for none). */
export type AgentxCallback = (error: Error | null, response?: { error?: number }) => void;

export interface AgentxVarbind {
  oid: string;
  type: number;
  value?: unknown;
}

export interface NetSnmpSubagent {
  socket?: Socket;
  sessionID: number;
  getMib(): MibLike & { getAncestorProviderFromOid(oid: string): unknown };
  open(callback: AgentxCallback): void;
  close(callback: AgentxCallback): void;
  registerProvider(provider: unknown, callback: AgentxCallback): void;
  notify(oid: string, varbinds: AgentxVarbind[], callback: AgentxCallback): void;
  sendResponse(responsePdu: { varbinds?: AgentxVarbind[] }, varbinds?: AgentxVarbind[]): void;
  on(event: 'error', listener: (error: Error) => void): void;
  on(event: 'close', listener: () => void): void;
}

export interface NetSnmpAgent {
  listener: { sockets: Record<string, UdpSocket> };
  getMib(): MibLike;
  getAuthorizer(): {
    addUser(user: unknown): void;
    addCommunity(community: string): void;
    getAccessControlModel(): {
      setUserAccess(name: string, level: number): void;
      setCommunityAccess(community: string, level: number): void;
    };
  };
  close(callback: () => void): void;
}
