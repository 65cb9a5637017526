// Seeded generation of REST requests from the gateway's own OpenAPI document: every route, with
// path, query, header and body values that are sometimes valid (taken from the schema and from
// the ids the fuzz set up) and mostly not (wrong types, non-canonical integers, over-long or
// undecodable path parameters, broken JSON, foreign methods). Deterministic for a seed.

/** mulberry32: a small, fast, seedable PRNG (the same seed gives the same requests). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

interface Schema {
  type?: string;
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  const?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  pattern?: string;
  minimum?: number;
  maximum?: number;
  maxLength?: number;
  maxItems?: number;
  format?: string;
}

interface Parameter {
  name: string;
  in: "path" | "query" | "header";
  schema?: Schema;
}

interface OpenApiOperation {
  parameters?: Parameter[];
  requestBody?: { content: Record<string, { schema: Schema }> };
  produces?: string[];
}

export interface Route {
  method: string;
  /** OpenAPI path, e.g. /v1/vms/{vm}/sources/{irq}. */
  path: string;
  parameters: Parameter[];
  body?: Schema;
  /** text/event-stream: a GET that succeeds opens a stream. */
  streams: boolean;
}

export interface FuzzRequest {
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  route: Route;
}

/** The routes of an OpenAPI document (fastify-swagger's JSON). */
export function routesOf(document: { paths: Record<string, Record<string, OpenApiOperation>> }): Route[] {
  const routes: Route[] = [];
  for (const [path, operations] of Object.entries(document.paths)) {
    for (const [method, operation] of Object.entries(operations)) {
      const json = operation.requestBody?.content["application/json"]?.schema;
      routes.push({
        method: method.toUpperCase(),
        path,
        parameters: operation.parameters ?? [],
        ...(json ? { body: json } : {}),
        streams: JSON.stringify(operation).includes("text/event-stream"),
      });
    }
  }
  return routes;
}

/** What the fuzz set up, so that valid values name things that exist. */
export interface FuzzWorld {
  ids: Record<string, string[]>;
  tokens: string[];
}

/** Integers not written the canonical way, or out of any parameter's range: each must be refused. */
export const NON_CANONICAL_INTEGERS = [
  "1e3",
  "1.9",
  "1.0",
  "01",
  "-1",
  "+1",
  "0x10",
  "1abc",
  "4294967296",
  "18446744073709551616",
  "99999999999999999999",
];
const INTEGER_TEXT = ["0", "1", "6", "10", ...NON_CANONICAL_INTEGERS, "", " 1", "NaN"];
const WEIRD_TEXT = [
  "%FF%FE",
  "%E0%A4%A",
  "..",
  "a%2Fb",
  "%00",
  "x".repeat(101),
  "é",
  "a b",
  "UPPER",
  "-",
  "a".repeat(63),
  "a".repeat(64),
];
const METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"];

export class RequestFuzzer {
  constructor(
    private readonly random: () => number,
    private readonly world: FuzzWorld,
  ) {}

  private pick<T>(items: readonly T[]): T {
    return items[Math.floor(this.random() * items.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private text(length = 1 + Math.floor(this.random() * 12)): string {
    const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789-_";
    return Array.from({ length }, () => this.pick([...alphabet])).join("");
  }

  /** A value the schema accepts, as far as this generator knows how. */
  valid(schema: Schema | undefined, name = "", depth = 0): unknown {
    if (!schema || depth > 6) return null;
    if (schema.const !== undefined) return schema.const;
    if (schema.enum) return this.pick(schema.enum);
    const union = schema.anyOf ?? schema.oneOf;
    if (union) return this.valid(this.pick(union), name, depth + 1);
    switch (schema.type) {
      case "object": {
        const out: Record<string, unknown> = {};
        for (const [key, property] of Object.entries(schema.properties ?? {}))
          if (schema.required?.includes(key) || this.chance(0.5))
            out[key] = this.valid(property, key, depth + 1);
        return out;
      }
      case "array":
        return Array.from({ length: Math.floor(this.random() * Math.min(3, schema.maxItems ?? 3)) }, () =>
          this.valid(schema.items, name, depth + 1),
        );
      case "integer": {
        const low = schema.minimum ?? 0;
        const high = Math.min(schema.maximum ?? 1000, low + 1000);
        return low + Math.floor(this.random() * (high - low + 1));
      }
      case "number":
        return this.random() * 100;
      case "boolean":
        return this.chance(0.5);
      case "string": {
        if (schema.format === "date-time") return new Date(0).toISOString();
        const known = this.world.ids[name];
        if (known && this.chance(0.8)) return this.pick(known);
        if (schema.pattern) {
          const pattern = new RegExp(schema.pattern);
          const candidates = [
            this.text(),
            String(Math.floor(this.random() * 100)),
            "0",
            "1",
            "a",
            "127.0.0.1:1",
          ];
          return candidates.find((candidate) => pattern.test(candidate)) ?? candidates[0];
        }
        return this.text();
      }
      default:
        return null;
    }
  }

  /** A value the schema may well refuse: another type, out of range, too long, or a valid one. */
  mutated(schema: Schema | undefined, name = "", depth = 0): unknown {
    if (this.chance(0.5)) return this.valid(schema, name, depth);
    if (schema?.type === "object" && depth < 4 && this.chance(0.6)) {
      const out = (this.valid(schema, name, depth) ?? {}) as Record<string, unknown>;
      const keys = Object.keys(schema.properties ?? {});
      if (keys.length > 0 && this.chance(0.7)) {
        const key = this.pick(keys);
        out[key] = this.mutated(schema.properties![key], key, depth + 1);
      } else if (this.chance(0.5)) out[this.text()] = this.text();
      else if (keys.length > 0) delete out[this.pick(keys)];
      return out;
    }
    return this.pick<unknown>([
      null,
      -1,
      1.5,
      2 ** 53,
      -(2 ** 63),
      "1e3",
      "",
      "x".repeat(5000),
      true,
      [],
      {},
      [[[[[]]]]],
      { a: { b: { c: {} } } },
      "18446744073709551616",
      "-0",
      this.text(),
    ]);
  }

  private pathValue(parameter: Parameter): string {
    const known = this.world.ids[parameter.name];
    if (known && this.chance(0.5)) return encodeURIComponent(this.pick(known));
    if (parameter.schema?.type === "integer" || this.chance(0.2)) {
      const text = this.pick(INTEGER_TEXT);
      return text === "" || this.chance(0.5) ? encodeURIComponent(text) : text;
    }
    const weird = this.pick(WEIRD_TEXT);
    return this.chance(0.7) ? weird : encodeURIComponent(this.text());
  }

  private queryValue(parameter: Parameter): string {
    if (this.chance(0.4)) return String(this.valid(parameter.schema, parameter.name));
    return this.pick([...INTEGER_TEXT, ...WEIRD_TEXT.slice(0, 6), "x".repeat(3000)]);
  }

  private authorization(): string | undefined {
    return this.pick([
      ...this.world.tokens.map((token) => `Bearer ${token}`),
      ...this.world.tokens.map((token) => `Bearer ${token}`),
      undefined,
      "Bearer nope",
      `Bearer ${this.world.tokens[0]!.slice(0, 17)}${"A".repeat(43)}`,
      "Basic dXNlcjpwYXNz",
      "Bearer",
    ]);
  }

  next(routes: readonly Route[]): FuzzRequest {
    const route = this.pick(routes);
    let url = route.path.replace(/\{([^}]+)\}/g, (_, name: string) =>
      this.pathValue(
        route.parameters.find((p) => p.in === "path" && p.name === name) ?? { name, in: "path" },
      ),
    );
    if (this.chance(0.05)) url = url.replace(/\/[^/]+$/, `/${this.pick(WEIRD_TEXT)}`);
    const query = route.parameters
      .filter((p) => p.in === "query" && this.chance(0.6))
      .map((p) => `${p.name}=${encodeURIComponent(this.queryValue(p))}`);
    if (this.chance(0.1)) query.push(`${this.text()}=${this.text()}`);
    const headers: Record<string, string> = {};
    const authorization = this.authorization();
    if (authorization) headers["authorization"] = authorization;
    if (this.chance(0.15)) headers["last-event-id"] = this.pick(INTEGER_TEXT.filter((t) => t !== ""));
    if (this.chance(0.15)) headers["idempotency-key"] = this.pick(["key-1", this.text(), "bad key", "é"]);
    const method = this.chance(0.9) ? route.method : this.pick(METHODS);
    let body: string | undefined;
    if (method !== "GET" && method !== "HEAD") {
      const roll = this.random();
      if (roll < 0.7) body = JSON.stringify(this.mutated(route.body));
      else if (roll < 0.8) body = "{not json";
      else if (roll < 0.85) body = "";
      else if (roll < 0.9) body = JSON.stringify("a string");
      if (body !== undefined) headers["content-type"] = this.chance(0.95) ? "application/json" : "text/plain";
    }
    return {
      method,
      url: `${url}${query.length > 0 ? `?${query.join("&")}` : ""}`,
      headers,
      ...(body !== undefined ? { body } : {}),
      route,
    };
  }
}
