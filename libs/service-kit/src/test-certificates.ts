// Certificates for TLS tests, made with the openssl CLI into a fresh temporary folder: a CA, a
// server certificate for 127.0.0.1 / localhost and a client certificate it signed, and a second,
// unrelated CA with a client certificate of its own. EC keys on prime256v1 keep it fast.
import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";

const run = promisify(execFile);

/** PEM file paths of one certificate and its private key. */
export interface CertificateFiles {
  cert: string;
  key: string;
}

export interface TestCertificates {
  /** The folder holding every file below. */
  dir: string;
  /** PEM certificate of the CA that signed `server` and `client`. */
  ca: string;
  /** Server certificate (subjectAltName IP:127.0.0.1, DNS:localhost), signed by `ca`. */
  server: CertificateFiles;
  /** Client certificate (extendedKeyUsage clientAuth), signed by `ca`. */
  client: CertificateFiles;
  /** PEM certificate of a second CA that has nothing to do with `ca`. */
  otherCa: string;
  /** Client certificate signed by `otherCa`. */
  otherClient: CertificateFiles;
  /** Deletes the folder. */
  remove(): void;
}

// One config for every openssl call, so that the system's openssl.cnf plays no part.
const CONFIG = `
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
authorityKeyIdentifier = keyid
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
authorityKeyIdentifier = keyid
`;

/** A new EC key on prime256v1, unencrypted (`req` options). */
const NEW_EC_KEY = { newkey: "ec", pkeyopt: "ec_paramgen_curve:prime256v1" };

/** Runs `openssl command -switch... -name value...`; fails with openssl's own message. */
async function openssl(command: string, switches: string[], values: Record<string, string>): Promise<void> {
  const args = [
    command,
    ...switches,
    ...Object.entries(values).flatMap(([name, value]) => [`-${name}`, value]),
  ];
  try {
    await run("openssl", args, { timeout: 10_000 });
  } catch (error) {
    const stderr = (error as { stderr?: string }).stderr ?? "";
    throw new Error(`openssl ${command} failed: ${(error as Error).message}\n${stderr}`);
  }
}

/** Makes all of TestCertificates in a new temporary folder (valid one day). */
export async function createTestCertificates(): Promise<TestCertificates> {
  const dir = mkdtempSync(join(tmpdir(), "vplane-tls-"));
  const config = join(dir, "openssl.cnf");
  writeFileSync(config, CONFIG);
  const filesOf = (name: string): CertificateFiles => ({
    cert: join(dir, `${name}.pem`),
    key: join(dir, `${name}.key`),
  });
  let serial = 0x1000;

  const makeCa = async (name: string) => {
    const files = filesOf(name);
    await openssl("req", ["-x509", "-nodes"], {
      config,
      extensions: "ca",
      ...NEW_EC_KEY,
      keyout: files.key,
      out: files.cert,
      subj: `/CN=vplane test ${name}`,
      days: "1",
    });
    return files;
  };
  const makeSigned = async (name: string, ca: CertificateFiles, extensions: "server" | "client") => {
    const files = filesOf(name);
    const csr = join(dir, `${name}.csr`);
    await openssl("req", ["-new", "-nodes"], {
      config,
      ...NEW_EC_KEY,
      keyout: files.key,
      out: csr,
      subj: `/CN=vplane test ${name}`,
    });
    await openssl("x509", ["-req"], {
      in: csr,
      CA: ca.cert,
      CAkey: ca.key,
      set_serial: String((serial += 1)),
      extfile: config,
      extensions,
      days: "1",
      out: files.cert,
    });
    return files;
  };

  try {
    const [ca, otherCa] = await Promise.all([makeCa("ca"), makeCa("other-ca")]);
    const [server, client, otherClient] = await Promise.all([
      makeSigned("server", ca, "server"),
      makeSigned("client", ca, "client"),
      makeSigned("other-client", otherCa, "client"),
    ]);
    return {
      dir,
      ca: ca.cert,
      server,
      client,
      otherCa: otherCa.cert,
      otherClient,
      remove: () => rmSync(dir, { recursive: true, force: true }),
    };
  } catch (error) {
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}
