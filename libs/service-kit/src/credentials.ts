import { readFileSync } from "node:fs";
import { ChannelCredentials, ServerCredentials } from "@grpc/grpc-js";

/** Paths to PEM files; all empty means plaintext (loopback by default). */
export interface TlsFiles {
  cert: string;
  key: string;
  /** Server: CA that client certificates must chain to (mutual TLS). Client: CA of the server. */
  ca: string;
}

export function serverCredentials(tls: TlsFiles): ServerCredentials {
  if (!tls.cert && !tls.key) return ServerCredentials.createInsecure();
  if (!tls.cert || !tls.key) throw new Error("TLS needs both a certificate and a key");
  const ca = tls.ca ? readFileSync(tls.ca) : null;
  return ServerCredentials.createSsl(
    ca,
    [{ cert_chain: readFileSync(tls.cert), private_key: readFileSync(tls.key) }],
    ca !== null,
  );
}

export function clientCredentials(tls?: Partial<TlsFiles>): ChannelCredentials {
  if (!tls?.ca && !tls?.cert) return ChannelCredentials.createInsecure();
  return ChannelCredentials.createSsl(
    tls.ca ? readFileSync(tls.ca) : null,
    tls.key ? readFileSync(tls.key) : null,
    tls.cert ? readFileSync(tls.cert) : null,
  );
}
