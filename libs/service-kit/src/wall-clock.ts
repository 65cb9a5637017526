/**
 * Now, in microseconds since the Unix epoch: the moments a live migration's downtime starts (the
 * source's devices pause) and ends (the destination's resume), compared across services and hosts.
 * performance.now() counts from performance.timeOrigin, a wall-clock time, at sub-millisecond
 * resolution (Date.now() has whole milliseconds, a unary call on loopback takes half of one).
 */
export function wallClockUs(): bigint {
  return BigInt(Math.round((performance.timeOrigin + performance.now()) * 1000));
}
