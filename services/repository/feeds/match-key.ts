/**
 * Matching of a normalised index key against a parsed feed dataset.
 */

import ipaddr from 'ipaddr.js';

import type { ObjectKindName } from '../../../modules/protocol/constants.js';
import type { Dataset, MatchResult } from './dataset.js';
import { ip6ToBigInt, parseIp4, parseIp4Cidr, parseIp6Entry } from './ip.js';

/**
 * Returns the entry of `dataset` that decides `key`, with the subject that `$` in its TXT stands for,
 * or undefined when the key's kind cannot match this dataset.
 */
export function matchKey(dataset: Dataset, kind: ObjectKindName, key: string): { match: MatchResult; subject: string } | undefined {
  switch (kind) {
    case 'ip': {
      const v4 = parseIp4(key);
      if (v4 !== undefined) {
        return { match: dataset.matchIp4(v4), subject: key };
      }
      if (ipaddr.IPv6.isValid(key)) {
        return { match: dataset.matchIp6(ip6ToBigInt(ipaddr.IPv6.parse(key))), subject: key };
      }
      return undefined;
    }
    case 'network': {
      const v4 = parseIp4Cidr(key);
      if (v4) {
        return { match: dataset.matchIp4(v4.network, v4.length), subject: key };
      }
      const v6 = parseIp6Entry(key);
      return v6 ? { match: dataset.matchIp6(v6.network, v6.length), subject: key } : undefined;
    }
    case 'domain':
      return { match: dataset.matchDomain(key), subject: key };
    case 'user': {
      const domain = key.slice(key.lastIndexOf('@') + 1);
      return domain ? { match: dataset.matchDomain(domain), subject: domain } : undefined;
    }
    default:
      return undefined;
  }
}
