// The browser/Node bundle: one ES module, no dependencies, deterministic (the playground
// serves a committed copy, app/static/agent-service-client.js, that a test keeps equal to
// a fresh build). `--copy` also writes that copy.
import { build } from "esbuild";
import { copyFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const outfile = join(here, "..", "dist", "agent-service-client.js");

await build({
  entryPoints: [join(here, "..", "src", "index.ts")],
  outfile,
  bundle: true,
  format: "esm",
  platform: "neutral",
  target: "es2020",
  legalComments: "none",
  banner: {
    js: "// agent-service TypeScript client (clients/typescript), built by `npm run build`. Do not edit.",
  },
  logLevel: "warning",
  absWorkingDir: join(here, ".."), // the path comments in the bundle must not depend on the cwd
});

if (process.argv.includes("--copy")) {
  const root = resolve(here, "..", "..", "..");
  copyFileSync(outfile, join(root, "app", "static", "agent-service-client.js"));
}
