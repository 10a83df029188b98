/**
 * Explicit lifecycle of daemons and long-lived objects, and bounded shutdown steps.
 */

import { CdrError } from './errors.js';
import type { Logger } from './logger.js';

/** States in order: `opening` until every part listens, `closing` until every part is released. */
export type LifecycleState = 'idle' | 'opening' | 'open' | 'closing' | 'closed';

const ALLOWED: Record<LifecycleState, LifecycleState[]> = {
  idle: ['opening', 'closed'],
  opening: ['open', 'closing'],
  open: ['closing'],
  closing: ['closed'],
  closed: [],
};

/** State holder that rejects transitions out of order. */
export class Lifecycle {
  #state: LifecycleState = 'idle';
  readonly #name: string;

  constructor(name: string) {
    this.#name = name;
  }

  get state(): LifecycleState {
    return this.#state;
  }

  /** Moves to `next`. @throws CdrError `ERR_STATE_TRANSITION` when `next` may not follow the current state. */
  moveTo(next: LifecycleState): void {
    if (!ALLOWED[this.#state].includes(next)) {
      throw new CdrError('ERR_STATE_TRANSITION', `${this.#name} cannot go from ${this.#state} to ${next}`, {
        details: { from: this.#state, to: next },
      });
    }
    this.#state = next;
  }
}

/**
 * Runs one shutdown step and waits at most `timeoutMs` for it. A step that times out or fails is logged
 * and the shutdown goes on with the next step, so one wedged part cannot hold the others open.
 *
 * @returns true when the step finished in time without error
 */
export async function runShutdownStep(
  log: Logger,
  step: string,
  timeoutMs: number,
  action: () => Promise<void> | void,
): Promise<boolean> {
  const started = Date.now();
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((resolveTimeout) => {
    timer = setTimeout(() => resolveTimeout('timeout'), timeoutMs);
    timer.unref();
  });

  try {
    const outcome = await Promise.race([Promise.resolve().then(action).then(() => 'done' as const), timeout]);
    if (outcome === 'timeout') {
      log.error({ step, timeoutMs, code: 'ERR_SHUTDOWN_TIMEOUT' }, 'shutdown step timed out; forcing the next step');
      return false;
    }
    log.info({ step, ms: Date.now() - started }, 'shutdown step finished');
    return true;
  } catch (error) {
    log.error({ step, err: error }, 'shutdown step failed; continuing');
    return false;
  } finally {
    clearTimeout(timer);
  }
}
