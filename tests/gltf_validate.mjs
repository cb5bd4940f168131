// Validate GLB files with the Khronos glTF-Validator (npm package `gltf-validator`).
//
// Usage: node tests/gltf_validate.mjs <node_modules dir> <file.glb>...
// Prints one JSON object: {"<file>": {"numErrors", "numWarnings", "numInfos", "numHints", "messages": [...]}}
// where messages are {code, severity, pointer, message}. Severity: 0 error, 1 warning, 2 info, 3 hint.
// tests/test_sandbox_meshes.py installs the package into a git-ignored folder and runs this script.

import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import path from "node:path";

const [modules, ...files] = process.argv.slice(2);
const require = createRequire(path.join(path.resolve(modules), "noop.js"));
const validator = require("gltf-validator");

const out = {};
for (const file of files) {
  const bytes = new Uint8Array(await readFile(file));
  const report = await validator.validateBytes(bytes, { uri: path.basename(file), maxIssues: 50 });
  const issues = report.issues;
  out[file] = {
    numErrors: issues.numErrors,
    numWarnings: issues.numWarnings,
    numInfos: issues.numInfos,
    numHints: issues.numHints,
    messages: issues.messages.map(({ code, severity, pointer, message }) => ({ code, severity, pointer, message })),
  };
}
process.stdout.write(JSON.stringify(out));
