/**
 * Checks of the Hello message: required fields, protocol version, IMP model, OOS firmware version and
 * the match between the IMP id and the client certificate.
 */

import { CdrError } from '../common/errors.js';
import { MIN_PROTOCOL_VERSION, PROTOCOL_VERSION } from '../../modules/protocol/constants.js';

export interface HelloFields {
  impId: string;
  clusterId: string;
  model: string;
  oosVersion: string;
  moduleVersion: string;
  protocolVersion: number;
}

/** A version as a list of numbers, compared element by element; missing elements count as 0. */
export type Version = number[];

/**
 * Parses an OOS firmware version such as "2.5", "2.5.1" or "OOS 2.6.0-b12" to its numbers.
 * Returns undefined when no MAJOR.MINOR is found at the start.
 */
export function parseOosVersion(text: string): Version | undefined {
  const match = /^(?:OOS[\s-]?)?v?(\d{1,4})\.(\d{1,4})(?:\.(\d{1,6}))?(?:[-+.\s].*)?$/i.exec(text.trim());
  if (!match) {
    return undefined;
  }
  return [Number(match[1]), Number(match[2]), Number(match[3] ?? 0)];
}

export function compareVersions(a: Version, b: Version): number {
  for (let index = 0; index < Math.max(a.length, b.length); index++) {
    const difference = (a[index] ?? 0) - (b[index] ?? 0);
    if (difference !== 0) {
      return Math.sign(difference);
    }
  }
  return 0;
}

/** Tells whether `model` names E-series hardware: "E100", "E-200", "E 300", "E-series". */
export function isESeriesModel(model: string): boolean {
  return /^E(?:[\s-]?\d|[\s-]?series\b)/i.test(model.trim());
}

/**
 * Checks a Hello against the repository's rules and returns the protocol version both sides speak.
 *
 * @param certificateName - common name of the client certificate the TLS layer verified
 * @param minOosVersion - oldest accepted OOS version, "MAJOR.MINOR[.PATCH]"
 * @throws CdrError `ERR_PROTO_INVALID_HELLO`, `ERR_PROTO_PROTOCOL_VERSION`, `ERR_PROTO_MODEL_NOT_SUPPORTED`,
 *   `ERR_PROTO_OOS_TOO_OLD` or `ERR_PROTO_IMP_ID_MISMATCH`, each with a message the IMP can log and a
 *   person can act on
 */
export function checkHello(hello: HelloFields, certificateName: string, minOosVersion: string): number {
  const missing = (['impId', 'clusterId', 'model', 'oosVersion', 'moduleVersion'] as const).filter(
    (field) => !hello[field] || hello[field].trim() === '',
  );
  if (missing.length > 0) {
    throw new CdrError('ERR_PROTO_INVALID_HELLO', `Hello is missing ${missing.join(', ')}; update the IMP client module`, {
      details: { missing },
    });
  }

  if (!hello.protocolVersion || hello.protocolVersion < MIN_PROTOCOL_VERSION) {
    throw new CdrError(
      'ERR_PROTO_PROTOCOL_VERSION',
      `client speaks protocol version ${hello.protocolVersion}, this repository needs ${MIN_PROTOCOL_VERSION} ` +
        `to ${PROTOCOL_VERSION}; update the IMP client module`,
      { details: { clientVersion: hello.protocolVersion } },
    );
  }

  if (isESeriesModel(hello.model)) {
    throw new CdrError(
      'ERR_PROTO_MODEL_NOT_SUPPORTED',
      `IMP model "${hello.model}" is E-series hardware, which IMP-CDR does not support; ` +
        `remove this IMP from the cluster's IMP-CDR configuration or replace it with a supported model`,
      { details: { model: hello.model } },
    );
  }

  const version = parseOosVersion(hello.oosVersion);
  if (!version) {
    throw new CdrError(
      'ERR_PROTO_INVALID_HELLO',
      `OOS version "${hello.oosVersion}" is not MAJOR.MINOR[.PATCH]; update the IMP client module`,
      { details: { oosVersion: hello.oosVersion } },
    );
  }
  const minimum = parseOosVersion(minOosVersion)!;
  if (compareVersions(version, minimum) < 0) {
    throw new CdrError(
      'ERR_PROTO_OOS_TOO_OLD',
      `OOS firmware ${hello.oosVersion} is older than ${minOosVersion}, the oldest this repository accepts; ` +
        `upgrade the IMP to OOS ${minOosVersion} or later`,
      { details: { oosVersion: hello.oosVersion, minOosVersion } },
    );
  }

  if (hello.impId !== certificateName) {
    throw new CdrError(
      'ERR_PROTO_IMP_ID_MISMATCH',
      `IMP id "${hello.impId}" does not match the client certificate, which was issued to "${certificateName}"; ` +
        `configure the IMP with the id it was enrolled as, or enroll it again`,
      { details: { impId: hello.impId, certificateName } },
    );
  }

  return Math.min(hello.protocolVersion, PROTOCOL_VERSION);
}
