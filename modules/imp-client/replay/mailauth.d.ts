// Types of the mailauth parser that the replay uses; mailauth 7 ships no declaration for it.

declare module 'mailauth/lib/parse-received.js' {
  interface ReceivedPart {
    value: string;
    comment?: string;
  }
  /** Parses one Received header ("Received: ..."); returns false when it has no colon. */
  export function parseReceived(header: string): false | Record<string, ReceivedPart | string | undefined>;
}
