// TLS and mutual TLS of a service started from its environment (VPLANE_TLS_CERT / _KEY /
// _CLIENT_CA), called through clientCredentials with certificates openssl makes for this run.
import assert from "node:assert/strict";
import { X509Certificate } from "node:crypto";
import { readFileSync } from "node:fs";
import { after, before, describe, it } from "node:test";
import type { ChannelCredentials } from "@grpc/grpc-js";
import { EchoServiceClient } from "@vplane/proto/gen/vplane/testing/v1/echo";
import { clientCredentials } from "../src/credentials.js";
import { createTestCertificates, startServiceForTests, type TestCertificates } from "../src/testing.js";
import { unaryCall } from "../src/unary-call.js";
import { VplaneError } from "../src/vplane-error.js";
import { echoDescription } from "./support.js";

/** Deadline of every call: a handshake that never finishes fails the test instead of hanging it. */
const CALL_TIMEOUT_MS = 5000;

/** One Echo call to `address` with `credentials`; the client is closed either way. */
async function echo(address: string, credentials: ChannelCredentials, payload = "hello"): Promise<string> {
  const client = new EchoServiceClient(address, credentials);
  try {
    const response = await unaryCall(
      client.echo.bind(client),
      { payload, failWithReason: "" },
      {
        timeoutMs: CALL_TIMEOUT_MS,
      },
    );
    return response.payload;
  } finally {
    client.close();
  }
}

/** The call failed as a connection that could not be made: UNAVAILABLE, not a deadline. */
function isUnavailable(error: unknown): boolean {
  assert.ok(error instanceof VplaneError, `expected a VplaneError, got ${String(error)}`);
  assert.equal(error.code, "UNAVAILABLE", error.message);
  return true;
}

let certs: TestCertificates;
before(async () => {
  certs = await createTestCertificates();
});
after(() => certs?.remove());

describe("test certificates", () => {
  it("the server certificate is for 127.0.0.1 and localhost and chains to the CA, not to the other CA", () => {
    const ca = new X509Certificate(readFileSync(certs.ca));
    const otherCa = new X509Certificate(readFileSync(certs.otherCa));
    const server = new X509Certificate(readFileSync(certs.server.cert));
    assert.equal(server.checkIP("127.0.0.1"), "127.0.0.1");
    assert.equal(server.checkHost("localhost"), "localhost");
    assert.ok(server.checkIssued(ca) && server.verify(ca.publicKey));
    assert.ok(!server.verify(otherCa.publicKey));
    const client = new X509Certificate(readFileSync(certs.client.cert));
    const otherClient = new X509Certificate(readFileSync(certs.otherClient.cert));
    assert.ok(client.verify(ca.publicKey) && !client.verify(otherCa.publicKey));
    assert.ok(otherClient.verify(otherCa.publicKey) && !otherClient.verify(ca.publicKey));
    assert.ok(ca.ca && otherCa.ca && !server.ca && !client.ca);
  });
});

describe("server TLS (VPLANE_TLS_CERT + VPLANE_TLS_KEY)", () => {
  let service: Awaited<ReturnType<typeof startServiceForTests>>;
  before(async () => {
    service = await startServiceForTests(echoDescription, {
      VPLANE_TLS_CERT: certs.server.cert,
      VPLANE_TLS_KEY: certs.server.key,
    });
  });
  after(() => service.stop(500));

  it("answers a client that trusts the CA (clientCredentials({ ca }))", async () => {
    assert.equal(await echo(service.address, clientCredentials({ ca: certs.ca }), "over tls"), "over tls");
  });

  it("refuses a plaintext client: the call fails UNAVAILABLE", async () => {
    await assert.rejects(echo(service.address, clientCredentials()), isUnavailable);
  });

  it("a client that trusts only another CA does not accept the server: UNAVAILABLE", async () => {
    await assert.rejects(echo(service.address, clientCredentials({ ca: certs.otherCa })), isUnavailable);
  });

  it("does not ask for a client certificate: a client presenting one is answered too", async () => {
    const credentials = clientCredentials({ ca: certs.ca, cert: certs.client.cert, key: certs.client.key });
    assert.equal(await echo(service.address, credentials), "hello");
  });
});

describe("mutual TLS (VPLANE_TLS_CLIENT_CA set)", () => {
  let service: Awaited<ReturnType<typeof startServiceForTests>>;
  before(async () => {
    service = await startServiceForTests(echoDescription, {
      VPLANE_TLS_CERT: certs.server.cert,
      VPLANE_TLS_KEY: certs.server.key,
      VPLANE_TLS_CLIENT_CA: certs.ca,
    });
  });
  after(() => service.stop(500));

  it("answers a client presenting a certificate the client CA signed", async () => {
    const credentials = clientCredentials({ ca: certs.ca, cert: certs.client.cert, key: certs.client.key });
    assert.equal(await echo(service.address, credentials, "mutual"), "mutual");
  });

  it("refuses a client presenting no certificate: UNAVAILABLE", async () => {
    await assert.rejects(echo(service.address, clientCredentials({ ca: certs.ca })), isUnavailable);
  });

  it("refuses a client whose certificate another CA signed: UNAVAILABLE", async () => {
    const credentials = clientCredentials({
      ca: certs.ca,
      cert: certs.otherClient.cert,
      key: certs.otherClient.key,
    });
    await assert.rejects(echo(service.address, credentials), isUnavailable);
  });

  it("refuses a plaintext client: UNAVAILABLE", async () => {
    await assert.rejects(echo(service.address, clientCredentials()), isUnavailable);
  });
});

describe("TLS configuration errors", () => {
  it("a certificate without a key does not start a plaintext server: start fails and says why", async () => {
    await assert.rejects(
      startServiceForTests(echoDescription, { VPLANE_TLS_CERT: certs.server.cert }),
      /TLS needs both a certificate and a key/,
    );
  });
});
