import { StoreUnavailableError, type Store } from "@vplane/store";

/** A store whose next writes can be made to fail, as an etcd that lost its quorum answers them. */
export interface FailingWrites {
  readonly store: Store;
  /** The next `count` writes (transaction, put, delete: one each) fail with StoreUnavailableError. */
  failNext(count?: number): void;
  /** Failures set by failNext that no write has met yet. */
  readonly failuresLeft: number;
}

/** `store`, with writes that fail on demand (test support). Reads always pass. */
export function failingWrites(store: Store): FailingWrites {
  let failures = 0;
  const writes = new Set<PropertyKey>(["transaction", "put", "delete"]);
  return {
    store: new Proxy(store, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (!writes.has(property) || typeof value !== "function") return value;
        return (...args: unknown[]) => {
          if (failures > 0) {
            failures--;
            return Promise.reject(new StoreUnavailableError("injected: the store did not answer"));
          }
          return (value as (...a: unknown[]) => unknown).apply(target, args);
        };
      },
    }),
    failNext(count = 1) {
      failures = count;
    },
    get failuresLeft() {
      return failures;
    },
  };
}
