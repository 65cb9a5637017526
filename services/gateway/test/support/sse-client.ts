// Reads a Server-Sent Events response the way EventSource does: events split on blank lines,
// `id:`, `event:` and `data:` fields, comments (lines starting with ':') ignored.

export interface SseEvent {
  id?: string;
  event: string;
  data: unknown;
}

export async function openSse(
  url: string,
  headers: Record<string, string>,
): Promise<{ status: number; next(timeoutMs?: number): Promise<SseEvent | undefined>; close(): void }> {
  const abort = new AbortController();
  const response = await fetch(url, { headers, signal: abort.signal });
  const reader = response.body!.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  let ended = false;
  const next = async (timeoutMs = 5000): Promise<SseEvent | undefined> => {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const split = buffer.indexOf("\n\n");
      if (split >= 0) {
        const block = buffer.slice(0, split);
        buffer = buffer.slice(split + 2);
        const event: SseEvent = { event: "message", data: undefined };
        let isEvent = false;
        for (const line of block.split("\n")) {
          if (line.startsWith(":")) continue;
          const colon = line.indexOf(":");
          const field = line.slice(0, colon);
          const value = line.slice(colon + 1).trimStart();
          isEvent = true;
          if (field === "id") event.id = value;
          else if (field === "event") event.event = value;
          else if (field === "data") event.data = JSON.parse(value);
        }
        if (isEvent) return event;
        continue;
      }
      if (ended) return undefined;
      const left = until - Date.now();
      if (left <= 0) throw new Error(`no SSE event within ${timeoutMs} ms; buffered: ${buffer}`);
      let timer: NodeJS.Timeout | undefined;
      const chunk = await Promise.race([
        reader.read(),
        new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no SSE event within ${timeoutMs} ms`)), left);
        }),
      ]).finally(() => clearTimeout(timer)); // a pending timer would keep the test process alive
      if (chunk.done) ended = true;
      else buffer += decoder.decode(chunk.value as Uint8Array, { stream: true });
    }
  };
  return { status: response.status, next, close: () => abort.abort() };
}
