import type { Store } from "@vplane/store";

/** `store`, telling `seen` of every method call (its name and arguments) before making it. */
export function observedStore(store: Store, seen: (method: string, args: unknown[]) => void): Store {
  return new Proxy(store, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if (typeof value !== "function") return value;
      return (...args: unknown[]) => {
        seen(String(property), args);
        return (value as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}
