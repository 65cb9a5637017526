import { VplaneError } from "./vplane-error.js";

/**
 * The stored resources a service could not rebuild when it started (a NATIVE device whose VMM's
 * fds died with the previous process, a guest RAM file gone). Their records stay in the store, so
 * they stay visible under their names: a call on one answers FAILED_PRECONDITION
 * `<KIND>_NOT_RESTORED` with the cause, and Delete removes it; the name is not left taken by an
 * invisible record.
 */
export class UnrestoredResources<R> {
  private readonly unrestored = new Map<string, { record: R; cause: string }>();

  /** `kind` names the resource in reasons: "SMMU" gives SMMU_NOT_RESTORED. */
  constructor(private readonly kind: string) {}

  add(key: string, record: R, cause: unknown): void {
    this.unrestored.set(key, { record, cause: cause instanceof Error ? cause.message : String(cause) });
  }

  has(key: string): boolean {
    return this.unrestored.has(key);
  }

  /** The stored record of an unrestored resource, if `key` is one. */
  record(key: string): R | undefined {
    return this.unrestored.get(key)?.record;
  }

  records(): R[] {
    return [...this.unrestored.values()].map((u) => u.record);
  }

  /** Throws the refusal for `name` (whose key is `key`) if it was not restored. */
  check(key: string, name: string): void {
    const found = this.unrestored.get(key);
    if (found === undefined) return;
    throw new VplaneError({
      code: "FAILED_PRECONDITION",
      reason: `${this.kind}_NOT_RESTORED`,
      message: `${name} is stored but could not be rebuilt when this service started (${found.cause}); delete it and create it again (a NATIVE one with its VMM's fds handed over again)`,
      field: "name",
    });
  }

  delete(key: string): void {
    this.unrestored.delete(key);
  }
}
