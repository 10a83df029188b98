/**
 * The pairing window: a time-limited one-time code with a bounded number of wrong attempts.
 *
 * The code exists in clear only in the return value of `open`, which the daemon sends once to cdrctl.
 * The window keeps an HMAC-SHA256 of it under a random key that lives as long as the window.
 */

import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

import type { ErrorCode } from '../common/errors.js';

/** Code characters: digits and capitals without 0, O, 1, I and L, which are easy to misread. */
const CODE_ALPHABET = '23456789ABCDEFGHJKMNPQRSTUVWXYZ';
/** Characters in a code; 8 characters of a 31-letter alphabet are about 39 bits. */
const CODE_LENGTH = 8;

export type WindowState = 'closed' | 'open' | 'expired' | 'locked';

export type CodeVerdict = { accepted: true } | { accepted: false; code: ErrorCode; message: string };

export class PairingWindow {
  #key: Buffer | undefined;
  #digest: Buffer | undefined;
  #expiresMs = 0;
  #attempts = 0;
  #maxAttempts = 0;

  /** Opens a window of `seconds`, replacing any open one, and returns its code as "XXXX-XXXX". */
  open(seconds: number, maxAttempts: number, nowMs = Date.now()): { code: string; expiresMs: number } {
    let code = '';
    for (let position = 0; position < CODE_LENGTH; position += 1) {
      code += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
    }
    this.#key = randomBytes(32);
    this.#digest = this.#hash(code);
    this.#expiresMs = nowMs + seconds * 1000;
    this.#attempts = 0;
    this.#maxAttempts = maxAttempts;
    return { code: `${code.slice(0, 4)}-${code.slice(4)}`, expiresMs: this.#expiresMs };
  }

  close(): void {
    this.#key = undefined;
    this.#digest = undefined;
    this.#expiresMs = 0;
    this.#attempts = 0;
  }

  state(nowMs = Date.now()): WindowState {
    if (!this.#digest) return 'closed';
    if (this.#attempts >= this.#maxAttempts) return 'locked';
    if (nowMs >= this.#expiresMs) return 'expired';
    return 'open';
  }

  get expiresMs(): number {
    return this.#expiresMs;
  }

  get attempts(): number {
    return this.#attempts;
  }

  get maxAttempts(): number {
    return this.#maxAttempts;
  }

  /**
   * Checks `candidate` against the code. Case, spaces and hyphens are ignored. Every wrong code counts;
   * after `maxAttempts` wrong codes the window is locked and even the right code is rejected until a
   * new window is opened.
   */
  verify(candidate: string, nowMs = Date.now()): CodeVerdict {
    const state = this.state(nowMs);
    if (state === 'closed') {
      return { accepted: false, code: 'ERR_PAIR_WINDOW_CLOSED', message: 'no pairing window is open; run "cdrctl pair open" on that node first' };
    }
    if (state === 'locked') {
      return {
        accepted: false,
        code: 'ERR_PAIR_TOO_MANY_ATTEMPTS',
        message: `${this.#attempts} wrong pairing codes were entered; run "cdrctl pair open" on that node again for a new code`,
      };
    }
    if (state === 'expired') {
      return {
        accepted: false,
        code: 'ERR_PAIR_WINDOW_EXPIRED',
        message: `the pairing window closed at ${new Date(this.#expiresMs).toISOString()}; run "cdrctl pair open" on that node again`,
      };
    }

    const normalized = candidate.toUpperCase().replace(/[\s-]/g, '');
    if (timingSafeEqual(this.#hash(normalized), this.#digest!)) {
      return { accepted: true };
    }
    this.#attempts += 1;
    const left = this.#maxAttempts - this.#attempts;
    return {
      accepted: false,
      code: 'ERR_PAIR_CODE_INVALID',
      message: `the pairing code is wrong; ${left} attempt${left === 1 ? '' : 's'} left before the window locks`,
    };
  }

  #hash(code: string): Buffer {
    return createHmac('sha256', this.#key!).update(code).digest();
  }
}
