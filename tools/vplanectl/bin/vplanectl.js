#!/usr/bin/env node
// The installed command (package.json "bin"). A committed file rather than the compiled
// dist/src/main.js: npm links it at install, before any build, and its run bit comes from git,
// not from whichever build or turbo cache restore (which drops run bits) wrote dist/ last.
import "../dist/src/main.js";
