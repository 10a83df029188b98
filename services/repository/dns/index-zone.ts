/**
 * Serves the consolidated index as a DNSBL zone: an address or domain whose verdict is `malicious`
 * answers 127.0.0.2 and `suspect` 127.0.0.3, with the reasons as TXT; other verdicts are NXDOMAIN.
 */

import type { VerdictName } from '../../../modules/protocol/constants.js';
import { formatIp4, formatIp6, parseReversedIp4, parseReversedIp6 } from '../feeds/ip.js';
import type { ReputationIndex } from '../reputation-index.js';
import { negativeAnswer, RCODE, recordsAnswer, type DnsZone, type ZoneAnswer } from './zone.js';

/** A value answered for each listed verdict. */
export const VERDICT_RETURN_CODES: Partial<Record<VerdictName, string>> = { malicious: '127.0.0.2', suspect: '127.0.0.3' };

const TEST_POINTS_LISTED = new Set(['127.0.0.2', '::ffff:7f00:2', 'test']);
const TEST_POINTS_NOT_LISTED = new Set(['127.0.0.1', '::ffff:7f00:1', 'invalid']);
/** TTL of test point answers, in seconds. */
const TEST_POINT_TTL = 300;

export class IndexZone implements DnsZone {
  readonly name: string;
  readonly #index: ReputationIndex;

  constructor(name: string, index: ReputationIndex) {
    this.name = name.toLowerCase().replace(/\.$/, '');
    this.#index = index;
  }

  async answer(labels: string[], qtype: string, qname: string): Promise<ZoneAnswer> {
    if (labels.length === 0) {
      return negativeAnswer(this.name, qtype === 'SOA' || qtype === 'NS' ? RCODE.REFUSED : RCODE.NOERROR, undefined, 0);
    }

    let kind: 'ip' | 'domain' = 'domain';
    let key = labels.join('.');
    const ip4 = parseReversedIp4(labels);
    const ip6 = ip4 === undefined ? parseReversedIp6(labels) : undefined;
    if (ip4 !== undefined) {
      kind = 'ip';
      key = formatIp4(ip4);
    } else if (ip6 !== undefined) {
      kind = 'ip';
      key = formatIp6(ip6);
    }

    // RFC 5782 section 5: the test points 127.0.0.2, ::ffff:7f00:2 and TEST are always listed, and
    // 127.0.0.1, ::ffff:7f00:1 and INVALID never, whatever the index holds for them.
    if (TEST_POINTS_LISTED.has(key)) {
      return recordsAnswer(this.name, qname, qtype, { listed: true, a: ['127.0.0.2'], txt: ['RFC 5782 test point'] }, undefined, TEST_POINT_TTL);
    }
    if (TEST_POINTS_NOT_LISTED.has(key)) {
      return negativeAnswer(this.name, RCODE.NXDOMAIN, undefined, TEST_POINT_TTL);
    }

    let reputation;
    try {
      reputation = await this.#index.lookup(kind, key);
    } catch {
      return negativeAnswer(this.name, RCODE.NXDOMAIN, undefined, 0);
    }
    const code = VERDICT_RETURN_CODES[reputation.verdict];
    if (!code) {
      return negativeAnswer(this.name, RCODE.NXDOMAIN, undefined, reputation.ttlSeconds);
    }
    const txt = `${reputation.verdict} (score ${reputation.score}): ${reputation.reasons.join('; ')}`;
    return recordsAnswer(this.name, qname, qtype, { listed: true, a: [code], txt: [txt] }, undefined, reputation.ttlSeconds);
  }
}
