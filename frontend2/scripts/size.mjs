// Prints the gzipped size of what each entry loads (its file plus imported chunks, from the Vite
// manifest) and fails when the dashboard's JavaScript passes the 250 KB budget.
import { readFileSync } from "node:fs";
import { gzipSync } from "node:zlib";
import { join } from "node:path";

const DIST = new URL("../dist/", import.meta.url).pathname;
const BUDGET_KB = 250;
const manifest = JSON.parse(readFileSync(join(DIST, ".vite/manifest.json"), "utf8"));

function closure(key, seen = new Set()) {
  if (seen.has(key)) return seen;
  seen.add(key);
  for (const dep of manifest[key].imports || []) closure(dep, seen);
  return seen;
}

const gz = (file) => gzipSync(readFileSync(join(DIST, file)), { level: 9 }).length / 1024;
let failed = false;
for (const [key, chunk] of Object.entries(manifest)) {
  if (!chunk.isEntry) continue;
  const chunks = [...closure(key)].map((k) => manifest[k]);
  const js = chunks.reduce((sum, c) => sum + gz(c.file), 0);
  const css = [...new Set(chunks.flatMap((c) => c.css || []))].reduce((sum, f) => sum + gz(f), 0);
  console.log(`${key}: JavaScript ${js.toFixed(1)} KB gzipped, CSS ${css.toFixed(1)} KB gzipped`);
  if (key === "src/main.jsx" && js > BUDGET_KB) failed = true;
}
if (failed) {
  console.error(`The dashboard's JavaScript is over the ${BUDGET_KB} KB gzipped budget.`);
  process.exit(1);
}
