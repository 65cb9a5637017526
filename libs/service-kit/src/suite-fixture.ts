import { after, before } from "node:test";

/**
 * What a describe block's tests share, started once for them: registers, in the calling describe
 * block, a `before` hook that runs `start` and an `after` hook that runs `stop` on what it gave.
 * The returned object reads through to that value (its properties, looked up when used), so the
 * tests use it as they would the value itself; read before the hook ran, it throws.
 */
export function suiteFixture<T extends object>(
  start: () => Promise<T>,
  stop: (started: T) => Promise<void>,
): T {
  let started: T | undefined;
  before(async () => {
    started = await start();
  });
  after(async () => {
    if (started !== undefined) await stop(started);
  });
  const current = (): T => {
    if (started === undefined) throw new Error("the suite's fixture is used before its before hook ran");
    return started;
  };
  return new Proxy({} as T, {
    get: (_target, property) => Reflect.get(current(), property) as unknown,
  });
}
