// One flat config for every workspace: typescript-eslint's type-aware recommended rules.
import js from "@eslint/js";
import tseslint from "typescript-eslint";

export default tseslint.config(
  {
    ignores: [
      "**/dist/**",
      "**/node_modules/**",
      "libs/proto/src/gen/**",
      "tools/gateway-client/src/gen/**",
      "proto/google/**",
      "data/**",
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      "@typescript-eslint/no-explicit-any": "error",
      "@typescript-eslint/no-unused-vars": ["error", { argsIgnorePattern: "^_", varsIgnorePattern: "^_" }],
      "@typescript-eslint/consistent-type-imports": "error",
      // node:test's describe/it return promises the runner itself awaits.
      "@typescript-eslint/no-floating-promises": [
        "error",
        {
          allowForKnownSafeCalls: [
            {
              from: "package",
              package: "node:test",
              name: ["describe", "it", "test", "suite", "before", "after", "beforeEach", "afterEach"],
            },
          ],
        },
      ],
    },
  },
  {
    // The backend boundary: only a device service's backend-factory.ts opens a concrete backend
    // (a module named emulated-*backend.ts or native-*backend.ts). The backends' own modules and
    // tests (emulated-*.ts, native-*.ts) may import them.
    files: ["**/*.ts"],
    ignores: ["**/backend-factory.ts", "**/emulated-*.ts", "**/native-*.ts"],
    rules: {
      "no-restricted-imports": [
        "error",
        {
          patterns: [
            {
              group: [
                "**/emulated-*backend",
                "**/emulated-*backend.js",
                "**/native-*backend",
                "**/native-*backend.js",
              ],
              message:
                "only backend-factory.ts opens a concrete backend: reach the device through the backend interface and openBackend",
            },
          ],
        },
      ],
    },
  },
  {
    // vplanectl proves the generated client: it calls the gateway only through it.
    files: ["tools/vplanectl/src/**/*.ts"],
    rules: {
      "no-restricted-globals": [
        "error",
        { name: "fetch", message: "call the gateway through @vplane/gateway-client (ApiClient.gateway)" },
      ],
    },
  },
  {
    files: ["**/*.js", "**/*.mjs"],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false },
      globals: {
        process: "readonly",
        console: "readonly",
        URL: "readonly",
        fetch: "readonly",
        setTimeout: "readonly",
      },
    },
  },
);
