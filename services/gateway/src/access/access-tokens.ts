import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from "node:fs";
import { dirname } from "node:path";
import { RESOURCE_ID_PATTERN } from "../schemas/resource-id.js";

/**
 * What a token may do. "host" is a host's own credential: it may only register and refresh that
 * one host (POST /v1/hosts/{host}:join), named by the token's `host`; it sees no tenant's VMs.
 */
export type Role = "admin" | "operator" | "viewer" | "host";
export const ROLES: readonly Role[] = ["admin", "operator", "viewer", "host"];

/** Who a request acts for: the tenant its VMs belong to and what it may do. */
export interface Principal {
  tokenId: string;
  tenant: string;
  role: Role;
  /** The host a "host" token speaks for. */
  host?: string;
}

/** One token as the tokens file keeps it: never the token, only a salted SHA-256 of its secret. */
export interface TokenEntry {
  id: string;
  tenant: string;
  role: Role;
  /** base64 of 16 random bytes. */
  salt: string;
  /** hex SHA-256 of salt || secret. */
  sha256: string;
  createTime: string;
  description?: string;
  /** Role "host" only: the host this credential registers and refreshes. */
  host?: string;
}

interface TokensFile {
  version: 1;
  tokens: TokenEntry[];
}

// "vpl_" + 12 hex id + "_" + 43 base64url characters (32 random bytes). The id finds the entry
// without trying every hash; the secret's 256 bits make a fast salted hash enough (no password
// stretching is needed for a random secret of that size).
const TOKEN_PATTERN = /^vpl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;
const TENANT_PATTERN = /^[a-z][a-z0-9-]{0,62}$/;
const HOST_PATTERN = new RegExp(RESOURCE_ID_PATTERN);
const RELOAD_CHECK_MS = 1000;
const VERIFIED_CACHE_SIZE = 10_000;

/** A "host" token names exactly one valid host id; no other role names one. */
function checkHostBinding(role: Role, host: string | undefined, where: string): void {
  if (role === "host" && (host === undefined || !HOST_PATTERN.test(host)))
    throw new Error(`${where}a host token needs the host id it speaks for (got '${host ?? ""}')`);
  if (role !== "host" && host !== undefined) throw new Error(`${where}only a host token names a host`);
}

function hashSecret(salt: Buffer, secret: string): Buffer {
  return createHash("sha256").update(salt).update(secret, "utf8").digest();
}

/**
 * The bearer tokens the gateway accepts, from a JSON file (or in memory for tests). The file is
 * re-read when it changes, so issuing a token needs no restart.
 */
export class AccessTokens {
  private entries = new Map<string, TokenEntry>();
  /**
   * Authorization values already verified, so a busy caller costs a map lookup rather than a
   * hash per request; cleared whenever the entries change (revocation, reload), bounded in size.
   */
  private readonly verified = new Map<string, Principal>();
  private fileMtimeMs = 0;
  private lastReloadCheck = 0;

  private constructor(private readonly path: string | undefined) {}

  static inMemory(): AccessTokens {
    return new AccessTokens(undefined);
  }

  /** No tokens yet; save() writes them to `path` (a tokens file that does not exist yet). */
  static inMemoryAt(path: string): AccessTokens {
    return new AccessTokens(path);
  }

  /**
   * The tokens of `path`. When the file does not exist and `bootstrapAdmin` is set, creates it
   * with one admin token of tenant "default" (only its hash is written) and hands the token to
   * `bootstrapAdmin` once: the one moment it exists in clear.
   */
  static open(path: string, options: { bootstrapAdmin?: (token: string, entry: TokenEntry) => void } = {}) {
    const tokens = new AccessTokens(path);
    if (!existsSync(path)) {
      if (!options.bootstrapAdmin) throw new Error(`tokens file ${path} does not exist`);
      const { token, entry } = tokens.issue({
        tenant: "default",
        role: "admin",
        description: "first-start admin",
      });
      tokens.save();
      options.bootstrapAdmin(token, entry);
      return tokens;
    }
    tokens.load();
    return tokens;
  }

  /** Adds a token; returns it in clear (the caller shows it once) and its stored entry. */
  issue(options: { tenant: string; role: Role; description?: string; host?: string }): {
    token: string;
    entry: TokenEntry;
  } {
    if (!TENANT_PATTERN.test(options.tenant)) throw new Error(`tenant '${options.tenant}' is not a valid id`);
    if (!ROLES.includes(options.role))
      throw new Error(`role '${options.role}' is not one of ${ROLES.join(", ")}`);
    checkHostBinding(options.role, options.host, "");
    const id = randomBytes(6).toString("hex");
    const secret = randomBytes(32).toString("base64url");
    const salt = randomBytes(16);
    const entry: TokenEntry = {
      id,
      tenant: options.tenant,
      role: options.role,
      salt: salt.toString("base64"),
      sha256: hashSecret(salt, secret).toString("hex"),
      createTime: new Date().toISOString(),
      ...(options.description ? { description: options.description } : {}),
      ...(options.host ? { host: options.host } : {}),
    };
    this.entries.set(id, entry);
    return { token: `vpl_${id}_${secret}`, entry };
  }

  revoke(id: string): boolean {
    this.verified.clear();
    return this.entries.delete(id);
  }

  list(): TokenEntry[] {
    return [...this.entries.values()];
  }

  /** Writes the file atomically, readable by its owner only. */
  save(): void {
    if (!this.path) return;
    mkdirSync(dirname(this.path), { recursive: true });
    const file: TokensFile = { version: 1, tokens: this.list() };
    const temporary = `${this.path}.${process.pid}.tmp`;
    writeFileSync(temporary, `${JSON.stringify(file, null, 2)}\n`, { mode: 0o600 });
    renameSync(temporary, this.path);
    this.fileMtimeMs = statSync(this.path).mtimeMs;
  }

  /** The principal of an Authorization header value, or undefined for anything not a valid token. */
  authenticate(authorization: string | undefined): Principal | undefined {
    if (!authorization) return undefined;
    const known = this.verified.get(authorization);
    if (known) return known;
    const principal = this.verify(authorization);
    if (principal) {
      if (this.verified.size >= VERIFIED_CACHE_SIZE) this.verified.clear();
      this.verified.set(authorization, principal);
    }
    return principal;
  }

  private verify(authorization: string): Principal | undefined {
    const match = /^Bearer ([^\s]+)$/i.exec(authorization.trim());
    const parsed = match ? TOKEN_PATTERN.exec(match[1]!) : null;
    if (!parsed) return undefined;
    const [, id, secret] = parsed as unknown as [string, string, string];
    let entry = this.entries.get(id);
    if (!entry && this.reloadIfChanged()) entry = this.entries.get(id);
    if (!entry) return undefined;
    const expected = Buffer.from(entry.sha256, "hex");
    const actual = hashSecret(Buffer.from(entry.salt, "base64"), secret);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) return undefined;
    return {
      tokenId: entry.id,
      tenant: entry.tenant,
      role: entry.role,
      ...(entry.host ? { host: entry.host } : {}),
    };
  }

  private load(): void {
    if (!this.path) return;
    const raw = JSON.parse(readFileSync(this.path, "utf8")) as Partial<TokensFile>;
    if (raw.version !== 1 || !Array.isArray(raw.tokens)) {
      throw new Error(`tokens file ${this.path}: expected {"version": 1, "tokens": [...]}`);
    }
    const entries = new Map<string, TokenEntry>();
    for (const [index, entry] of raw.tokens.entries()) {
      const where = `tokens file ${this.path}: tokens[${index}]`;
      if (!/^[0-9a-f]{12}$/.test(entry.id)) throw new Error(`${where}.id is not 12 hex digits`);
      if (!TENANT_PATTERN.test(entry.tenant)) throw new Error(`${where}.tenant is not a valid id`);
      if (!ROLES.includes(entry.role)) throw new Error(`${where}.role is not one of ${ROLES.join(", ")}`);
      if (!/^[0-9a-f]{64}$/.test(entry.sha256)) throw new Error(`${where}.sha256 is not a SHA-256 in hex`);
      checkHostBinding(entry.role, entry.host, `${where}: `);
      entries.set(entry.id, entry);
    }
    this.entries = entries;
    this.verified.clear();
    this.fileMtimeMs = statSync(this.path).mtimeMs;
  }

  /** Re-reads the file when it changed since the last read (checked at most once a second). */
  private reloadIfChanged(): boolean {
    if (!this.path) return false;
    const now = Date.now();
    if (now - this.lastReloadCheck < RELOAD_CHECK_MS) return false;
    this.lastReloadCheck = now;
    try {
      if (statSync(this.path).mtimeMs === this.fileMtimeMs) return false;
      this.load();
      return true;
    } catch {
      return false; // a half-written or removed file: keep the tokens we have
    }
  }
}
