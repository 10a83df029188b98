// Types of the two mailauth parsers that the replay uses; mailauth 7 ships no declarations for them.

declare module 'mailauth/lib/parse-dkim-headers.js' {
  /** Parses a tag-value header such as Authentication-Results into nested objects. */
  function parseDkimHeaders(header: string): { parsed: Record<string, unknown>; original: string };
  export default parseDkimHeaders;
}

declare module 'mailauth/lib/parse-received.js' {
  interface ReceivedPart {
    value: string;
    comment?: string;
  }
  /** Parses one Received header ("Received: ..."); returns false when it has no colon. */
  export function parseReceived(header: string): false | Record<string, ReceivedPart | string | undefined>;
}
