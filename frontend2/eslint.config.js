// `npm run lint` (and so `make test`) runs this with --max-warnings 0: a warning fails CI like an error.
import js from "@eslint/js";
import reactHooks from "eslint-plugin-react-hooks";
import { defineConfig, globalIgnores } from "eslint/config";
import globals from "globals";

export default defineConfig([
  globalIgnores(["dist/", "node_modules/"]),
  {
    files: ["**/*.{js,jsx,mjs}"],
    extends: [js.configs.recommended, reactHooks.configs.flat.recommended],
    languageOptions: {
      ecmaVersion: "latest",
      sourceType: "module",
      parserOptions: { ecmaFeatures: { jsx: true } },
      globals: globals.browser,
    },
    rules: {
      // A missing hook dependency is a stale-closure bug, not a style point.
      "react-hooks/exhaustive-deps": "error",
    },
  },
  {
    // Tests import from "vitest" today; the globals keep a test that uses `vi`/`expect` bare from failing lint.
    files: ["src/**/*.test.{js,jsx}", "src/test/**"],
    languageOptions: { globals: { ...globals.browser, ...globals.vitest } },
  },
  {
    // Build and tooling scripts run in Node, not the browser.
    files: ["vite.config.js", "eslint.config.js", "scripts/**"],
    languageOptions: { globals: globals.node },
  },
]);
