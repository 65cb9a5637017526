// Sends oversized bodies to a gateway from its own process, as a real client would (in the test
// process the server's and the client's I/O would share one event loop and hide the race), and
// prints one line of JSON: for each try, the answer's status and error reason, or the error.
// Usage: node oversized-upload-client.js <fetch|chunked> <port> <token> <tries> <bytes>
import { request } from "node:http";

type Outcome = { status?: number; reason?: string; error?: string };

const [mode, port, token, tries, bytes] = process.argv.slice(2) as [string, string, string, string, string];
const url = `http://127.0.0.1:${port}/v1/vms`;
const headers = { authorization: `Bearer ${token}`, "content-type": "application/json" };

function reasonOf(text: string): string | undefined {
  try {
    return (JSON.parse(text) as { error?: { reason?: string } }).error?.reason;
  } catch {
    return undefined;
  }
}

async function viaFetch(): Promise<Outcome> {
  try {
    const response = await fetch(url, { method: "POST", headers, body: Buffer.alloc(Number(bytes), 0x20) });
    return { status: response.status, reason: reasonOf(await response.text()) };
  } catch (error) {
    return { error: `${(error as Error).message}: ${String((error as { cause?: unknown }).cause)}` };
  }
}

function viaChunkedUpload(): Promise<Outcome> {
  return new Promise((resolve) => {
    const req = request(
      url,
      { method: "POST", headers: { ...headers, "transfer-encoding": "chunked" } },
      (res) => {
        let text = "";
        res.on("data", (chunk: Buffer) => (text += chunk.toString()));
        res.on("end", () => resolve({ status: res.statusCode!, reason: reasonOf(text) }));
        res.on("error", (error) => resolve({ error: error.message }));
      },
    );
    req.on("error", (error) => resolve({ error: error.message }));
    const chunk = Buffer.alloc(64 * 1024, 0x20);
    let sent = 0;
    const pump = () => {
      while (sent < Number(bytes)) {
        sent += chunk.length;
        if (!req.write(chunk)) return void req.once("drain", pump);
      }
      req.end();
    };
    pump();
  });
}

const outcomes: Outcome[] = [];
for (let i = 0; i < Number(tries); i++)
  outcomes.push(await (mode === "fetch" ? viaFetch() : viaChunkedUpload()));
process.stdout.write(`${JSON.stringify(outcomes)}\n`);
