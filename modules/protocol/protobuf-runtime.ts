/**
 * The protobufjs runtime used by the generated code, set to represent 64-bit integers as JavaScript
 * numbers. Without this, fields absent on the wire default to `Long` objects while present ones decode to
 * numbers (the code is generated with --force-number), and `Number(Long)` is NaN.
 *
 * Counters stay exact up to 2^53; the server caps each delta (see MAX_COUNTER_DELTA) to keep totals there.
 */

import protobuf from 'protobufjs/minimal.js';

protobuf.util.Long = undefined as unknown as typeof protobuf.util.Long;
protobuf.configure();

export default protobuf;
