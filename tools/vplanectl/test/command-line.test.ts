// The parser itself (no gateway needed): version, help per command, flags refused by the commands
// that do not take them, output formats, completion scripts for bash and zsh.
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { describe, it } from "node:test";
import { runVplanectl } from "./embedded-stack.js";

const cli = (args: string[], env: Record<string, string> = {}) => runVplanectl(args, env, tmpdir());
const { version } = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")) as {
  version: string;
};

describe("vplanectl command line", () => {
  it("--version prints the package version", async () => {
    assert.deepEqual(await cli(["--version"]), { code: 0, stdout: `${version}\n`, stderr: "" });
  });

  it("--help lists every command; each command has its own help with its own flags", async () => {
    const help = await cli(["--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^vplanectl: /);
    for (const command of [
      "vms",
      "hosts",
      "operations",
      "migrate",
      "vcpus",
      "sources",
      "queues",
      "esb",
      "tima",
      "trigger",
      "smmus",
      "events",
      "api",
      "completion",
    ])
      assert.match(help.stdout, new RegExp(`vplanectl ${command}\\b`), command);
    const configure = await cli(["sources", "configure", "--help"]);
    assert.equal(configure.code, 0);
    assert.match(configure.stdout, /--priority/);
    assert.doesNotMatch(configure.stdout, /--qaddr/, "a flag of another command is not listed");
  });

  it("a flag the command does not take is refused (exit 2), even one another command takes", async () => {
    const stray = await cli(["vms", "list", "--irq", "5", "--to", "h9"]);
    assert.equal(stray.code, 2);
    assert.match(stray.stderr, /Unknown arguments?: .*irq/);
    assert.equal((await cli(["vms", "list", "--no-such-flag"])).code, 2);
    assert.equal((await cli(["trigger", "vm-1", "--irq", "seven"])).code, 2, "not an integer");
  });

  it("unknown commands, missing ones and bad output formats exit 2", async () => {
    assert.equal((await cli([])).code, 2);
    assert.equal((await cli(["vms"])).code, 2);
    assert.equal((await cli(["vms", "frobnicate"])).code, 2);
    assert.equal((await cli(["vms", "list", "--output", "xml"])).code, 2);
    assert.equal((await cli(["vms", "list"], { VPLANE_OUTPUT: "xml" })).code, 2);
  });

  it("completion prints a bash script, or a zsh one from zsh, that asks vplanectl for its words", async () => {
    const bash = await cli(["completion"], { SHELL: "/bin/bash" });
    assert.equal(bash.code, 0);
    assert.match(bash.stdout, /complete -o bashdefault -o default -F _vplanectl_yargs_completions vplanectl/);
    const zsh = await cli(["completion"], { SHELL: "/bin/zsh" });
    assert.equal(zsh.code, 0);
    assert.match(zsh.stdout, /compdef _vplanectl_yargs_completions vplanectl/);
    const words = await cli(["--get-yargs-completions", "vplanectl", "smmus", ""]);
    assert.deepEqual(
      words.stdout
        .trim()
        .split("\n")
        .map((l) => l.split(":")[0])
        .sort(),
      ["attach", "events", "map", "translate"],
    );
  });
});
