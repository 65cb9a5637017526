// A seeded REST fuzz over every route of /openapi.json, against a gateway in front of one host's
// real services (issue 17 "Tests"): no answer is a 5xx, every error answer is in the error shape
// {error: {code, reason, message, details}}, and every request is answered in time. Bounded by
// a request count and a time budget; VPLANE_FUZZ_SEED replays a run (the seed is printed).
import assert from "node:assert/strict";
import { after, before, describe, it } from "node:test";
import { RequestFuzzer, routesOf, seededRandom, type FuzzRequest } from "./support/request-fuzzer.js";
import { startEmbeddedHost, type EmbeddedHost } from "./support/embedded-host.js";
import { startTestGateway, type TestGateway } from "./support/test-gateway.js";

const SEED = Number(process.env["VPLANE_FUZZ_SEED"] ?? 0x5eed17);
const MAX_REQUESTS = 600;
const TIME_BUDGET_MS = 20_000;
/** Longer than any answer takes here: past it a request counts as hung. */
const ANSWER_WITHIN_MS = 5_000;
const STATUS_NAMES = new Set([
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
]);

/** What is wrong with an error answer's body, or undefined when it has the error shape. */
function shapeProblem(text: string): string | undefined {
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return "not JSON";
  }
  const error = (body as { error?: Record<string, unknown> } | null)?.error;
  if (!error || Object.keys(body as object).length !== 1) return "not {error: {...}}";
  if (Object.keys(error).sort().join() !== "code,details,message,reason") return "error keys";
  if (!STATUS_NAMES.has(error["code"] as string)) return `code ${String(error["code"])}`;
  if (!/^[A-Z][A-Z0-9_]*$/.test(error["reason"] as string)) return `reason ${String(error["reason"])}`;
  if (typeof error["message"] !== "string") return "message";
  if (typeof error["details"] !== "object" || error["details"] === null) return "details";
  return undefined;
}

describe("REST fuzz: every route of /openapi.json, seeded and bounded", () => {
  let host: EmbeddedHost;
  let gw: TestGateway;
  let base: string;
  before(async () => {
    host = await startEmbeddedHost("h1");
    gw = await startTestGateway();
    await gw.services.hosts.register({ name: "h1", addresses: host.addresses }, "api");
    await gw.createVm("operator", {
      name: "fz",
      vcpus: 2,
      memoryBytes: 4 << 20,
      interruptController: { mode: "xive", nrServers: 8 },
      iommu: { smmus: [{ name: "s0", devices: [{ physicalSid: 8, virtualSid: 0 }] }] },
    });
    ({ base } = await gw.listen());
  });
  after(async () => {
    await gw.close();
    await host.stop();
  });

  it("no 5xx, the error shape on every error answer, and every request answered in time", async (t) => {
    const document = (await gw.call(null, "GET", "/openapi.json")).json<Parameters<typeof routesOf>[0]>();
    const routes = routesOf(document);
    assert.ok(routes.length >= 30, `${routes.length} routes`);
    const operationId = (await gw.call("operator", "GET", "/v1/operations"))
      .json<{
        operations: { name: string }[];
      }>()
      .operations[0]!.name.slice("operations/".length);
    const fuzzer = new RequestFuzzer(seededRandom(SEED), {
      ids: {
        vm: ["fz", "nope"],
        smmu: ["s0", "s9"],
        host: ["h1", "h9"],
        operation: [operationId, "op-00000000000000000000"],
        name: ["fz", "h2"],
        destinationHost: ["h1", "h9"],
      },
      tokens: [gw.token.operator, gw.token.admin, gw.token.viewer, gw.token.other],
    });
    const describe = (request: FuzzRequest) =>
      `${request.method} ${request.url} ${JSON.stringify(request.headers)} ${request.body?.slice(0, 200) ?? ""} (seed ${SEED})`;
    const problems: string[] = [];
    const statuses = new Map<number, number>();
    const routesSeen = new Set<string>();
    const until = performance.now() + TIME_BUDGET_MS;
    let sent = 0;
    for (; sent < MAX_REQUESTS && performance.now() < until && problems.length < 10; sent++) {
      const request = fuzzer.next(routes);
      let response: Response;
      try {
        response = await fetch(`${base}${request.url}`, {
          method: request.method,
          headers: request.headers,
          ...(request.body !== undefined ? { body: request.body } : {}),
          signal: AbortSignal.timeout(ANSWER_WITHIN_MS),
        });
      } catch (error) {
        problems.push(
          `no answer (${(error as Error).name}: ${(error as Error).message}): ${describe(request)}`,
        );
        continue;
      }
      routesSeen.add(`${request.route.method} ${request.route.path}`);
      statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
      const streaming = (response.headers.get("content-type") ?? "").startsWith("text/event-stream");
      if (streaming) {
        await response.body?.cancel(); // an open stream: its answer was its headers
        continue;
      }
      const text = await response.text();
      // /readyz answers 503 with its readiness body when a host the fuzz registered is unreachable.
      const readiness = request.route.path === "/readyz";
      if (response.status >= 500 && !readiness)
        problems.push(`${response.status} ${text.slice(0, 300)}: ${describe(request)}`);
      if (response.status >= 400 && !readiness && request.method !== "HEAD") {
        const problem = shapeProblem(text);
        if (problem)
          problems.push(
            `${response.status} not in the error shape (${problem}): ${text.slice(0, 200)}: ${describe(request)}`,
          );
      }
    }
    t.diagnostic(
      `seed ${SEED}: ${sent} requests over ${routesSeen.size} of ${routes.length} routes; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    assert.deepEqual(problems, []);
    assert.ok(sent >= 100, `only ${sent} requests in the time budget`);
  });
});
