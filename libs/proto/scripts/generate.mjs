// Generates libs/proto/src/gen from proto/ (buf + ts-proto as a local plugin) and writes the
// descriptor set that server reflection serves. google/** comes from the google-proto-files npm
// package, copied under proto/google (git-ignored) because the Buf registry is unreachable here.
import { execFileSync } from "node:child_process";
import { cpSync, mkdirSync, rmSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const pkg = join(here, "..");
const protoRoot = join(pkg, "../../proto");
const googleSrc = join(
  dirname(createRequire(import.meta.url).resolve("google-proto-files/package.json")),
  "google",
);
const vendored = [
  "rpc/status.proto",
  "rpc/error_details.proto",
  "rpc/code.proto",
  "longrunning/operations.proto",
  "api/annotations.proto",
  "api/http.proto",
  "api/client.proto",
  "api/launch_stage.proto",
  "api/field_behavior.proto",
];
rmSync(join(protoRoot, "google"), { recursive: true, force: true });
for (const file of vendored) {
  mkdirSync(dirname(join(protoRoot, "google", file)), { recursive: true });
  cpSync(join(googleSrc, file), join(protoRoot, "google", file));
}

// buf and protoc-gen-ts_proto live in whichever node_modules/.bin npm put them.
const binPath = [join(pkg, "node_modules/.bin"), join(pkg, "../../node_modules/.bin"), process.env.PATH].join(
  ":",
);
const run = (args) =>
  execFileSync("buf", args, { cwd: pkg, stdio: "inherit", env: { ...process.env, PATH: binPath } });
rmSync(join(pkg, "src/gen"), { recursive: true, force: true });
run(["generate", protoRoot, "--template", "buf.gen.yaml"]);
mkdirSync(join(pkg, "dist"), { recursive: true });
run(["build", protoRoot, "--as-file-descriptor-set", "-o", join(pkg, "dist/descriptor-set.binpb")]);
