/**
 * Which connections subscribed to which objects, and the pushes sent when an object's score or verdict
 * changes.
 */

import type { Logger } from '../common/logger.js';
import type { ObjectKindName } from '../../modules/protocol/constants.js';
import type { ObjectReputation, ReputationIndex } from './reputation-index.js';
import { reputationToWire } from './wire.js';
import type { impcdr } from '../../modules/protocol/generated/messages.js';

/** The part of a connection the registry uses. */
export interface Subscriber {
  readonly id: string;
  push(reputation: impcdr.v1.IReputation): void;
}

interface Subscription {
  /** Score and verdict last sent to (or read by) the subscriber. */
  score: number;
  verdict: string;
}

export class SubscriptionRegistry {
  readonly #byObject = new Map<string, Map<Subscriber, Subscription>>();
  readonly #countBySubscriber = new Map<Subscriber, number>();
  readonly #log: Logger;
  pushes = 0;

  constructor(log: Logger) {
    this.#log = log;
  }

  has(subscriber: Subscriber, id: string): boolean {
    return this.#byObject.get(id)?.has(subscriber) ?? false;
  }

  countFor(subscriber: Subscriber): number {
    return this.#countBySubscriber.get(subscriber) ?? 0;
  }

  add(subscriber: Subscriber, id: string, current: ObjectReputation): void {
    let subscribers = this.#byObject.get(id);
    if (!subscribers) {
      subscribers = new Map();
      this.#byObject.set(id, subscribers);
    }
    if (!subscribers.has(subscriber)) {
      this.#countBySubscriber.set(subscriber, this.countFor(subscriber) + 1);
    }
    subscribers.set(subscriber, { score: current.score, verdict: current.verdict });
  }

  remove(subscriber: Subscriber, id: string): void {
    const subscribers = this.#byObject.get(id);
    if (!subscribers?.delete(subscriber)) {
      return;
    }
    this.#countBySubscriber.set(subscriber, this.countFor(subscriber) - 1);
    if (subscribers.size === 0) {
      this.#byObject.delete(id);
    }
  }

  /** Drops every subscription of a closed connection. */
  removeAll(subscriber: Subscriber): void {
    for (const [id, subscribers] of this.#byObject) {
      if (subscribers.delete(subscriber) && subscribers.size === 0) {
        this.#byObject.delete(id);
      }
    }
    this.#countBySubscriber.delete(subscriber);
  }

  /**
   * Recomputes the subscribed objects among `touched` and pushes to each subscriber whose last known
   * score or verdict differs.
   */
  async notify(index: ReputationIndex, touched: Iterable<string>): Promise<void> {
    for (const id of touched) {
      const subscribers = this.#byObject.get(id);
      if (!subscribers || subscribers.size === 0) {
        continue;
      }

      const separator = id.indexOf('\u0000');
      const kind = id.slice(0, separator) as ObjectKindName;
      const key = id.slice(separator + 1);
      let current: ObjectReputation;
      try {
        current = await index.lookupNormalised(kind, key, true);
      } catch (error) {
        this.#log.error({ err: error, kind, key }, 'computing a pushed reputation failed');
        continue;
      }

      const wire = reputationToWire(current);
      for (const [subscriber, last] of subscribers) {
        if (last.score === current.score && last.verdict === current.verdict) {
          continue;
        }
        last.score = current.score;
        last.verdict = current.verdict;
        subscriber.push(wire);
        this.pushes += 1;
      }
    }
  }
}
