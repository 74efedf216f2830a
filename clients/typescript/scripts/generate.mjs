// Regenerates src/generated/openapi.ts from the server's OpenAPI document.
// The document is dumped by the server's own code (no running server needed):
//   python -c "from app.main import create_app; ..."
// then turned into types by openapi-typescript. Run from clients/typescript: npm run openapi.
// An argument writes elsewhere (the freshness test compares that with the committed file).
import { execFileSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, "..", "..", "..");
const venvPython = join(root, ".venv", "bin", "python");
const python = process.env.PYTHON || (existsSync(venvPython) ? venvPython : "python3");

const dump =
  "import json, sys; from app.main import create_app; " +
  "json.dump(create_app().openapi(), sys.stdout, indent=1, sort_keys=True)";
const document = execFileSync(python, ["-c", dump], { cwd: root, maxBuffer: 64 * 1024 * 1024 });

const work = mkdtempSync(join(tmpdir(), "agent-service-openapi-"));
try {
  const input = join(work, "openapi.json");
  writeFileSync(input, document);
  const cli = join(here, "..", "node_modules", "openapi-typescript", "bin", "cli.js");
  const output = process.argv[2] ?? join(here, "..", "src", "generated", "openapi.ts");
  // Defaults make a field optional to send (not required), and an object without declared
  // properties (an agent input) is any object rather than an empty one.
  const flags = ["--default-non-nullable", "false", "--empty-objects-unknown"];
  execFileSync(process.execPath, [cli, input, ...flags, "-o", output], { stdio: ["ignore", "ignore", "inherit"] });
} finally {
  rmSync(work, { recursive: true, force: true });
}
