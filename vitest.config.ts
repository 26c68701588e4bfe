import { defineConfig } from "vitest/config";
import { sourceDefines } from "./scripts/package-facts.mjs";

// Two projects: unit (pure logic, no root, no kernel) and integration (the built executables against
// real network namespaces; needs root and `npm run build` first).
export default defineConfig({
  test: {
    projects: [
      // define: what build.mjs embeds in the executable (the version of cni-ts), embedded in the sources tests run.
      {
        define: sourceDefines,
        test: {
          name: "unit",
          include: ["test/unit/**/*.test.ts", "**/*.unit.test.ts"],
          exclude: ["node_modules/**", "dist/**"],
        },
      },
      {
        define: sourceDefines,
        test: {
          name: "integration",
          include: ["test/integration/**/*.test.ts", "test/reliability/**/*.test.ts"],
          testTimeout: 120_000,
          hookTimeout: 120_000,
          fileParallelism: false,
        },
      },
    ],
  },
});
