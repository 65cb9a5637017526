/**
 * Makes a delete idempotent under its request id: a retry of a delete that succeeded answers
 * success instead of the NOT_FOUND the second attempt meets. The last `kept` ids are remembered
 * (in memory: a retry after a restart meets NOT_FOUND).
 */
export class IdempotentDeletes {
  private readonly deletedBy = new Map<string, string>();

  constructor(private readonly kept = 1024) {}

  async run(requestId: string, name: string, remove: () => Promise<unknown>): Promise<void> {
    try {
      await remove();
    } catch (error) {
      if (requestId !== "" && this.deletedBy.get(requestId) === name) return;
      throw error;
    }
    if (requestId === "") return;
    this.deletedBy.set(requestId, name);
    if (this.deletedBy.size > this.kept) this.deletedBy.delete(this.deletedBy.keys().next().value!);
  }
}
