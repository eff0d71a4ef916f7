// Writes the tokenizer fixtures: the real tokenizer.json files (tar.gz) and the ids and decoded
// text that the JavaScript port of Hugging Face tokenizers (@lenml/tokenizers) gives for a corpus.
// Run by make_tokenizer_fixtures.py (npm install in tests/reference first; node_modules is not committed).
import fs from "node:fs";
import path from "node:path";
import { execFileSync } from "node:child_process";
import { createRequire } from "node:module";

const here = path.dirname(new URL(import.meta.url).pathname);
const out = path.join(here, "fixtures", "tokenizer");
const require = createRequire(import.meta.url);
const names = ["qwen3", "deepseek_v3", "gptoss", "llama3", "llama2"];

const corpus = JSON.parse(fs.readFileSync(path.join(out, "corpus.json"), "utf8")).texts;

const expected = {};
for (const name of names) {
  const pkg = `@lenml/tokenizer-${name}`;
  const { fromPreTrained } = require(pkg);
  const tok = fromPreTrained();
  const pkgdir = path.join(here, "node_modules", ...pkg.split("/"));
  const models = path.join(pkgdir, "models");
  const version = JSON.parse(fs.readFileSync(path.join(pkgdir, "package.json"), "utf8")).version;
  // -n: no timestamps in the gzip header, so the archive is reproducible.
  const tarball = path.join(out, `${name}.tar.gz`);
  execFileSync("sh", ["-c", `tar -C '${models}' --owner=0 --group=0 --mtime=@0 -cf - tokenizer.json tokenizer_config.json | gzip -n -9 > '${tarball}'`]);
  const rows = corpus.map((text) => {
    const ids = tok.encode(text, { add_special_tokens: false });
    const ids_special = tok.encode(text, { add_special_tokens: true });
    const decoded = ids.length === 0 ? "" : tok.decode(ids, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
    return { ids, ids_special, decoded };
  });
  expected[name] = { package: `${pkg}@${version}`, rows };
  console.log(`${name}: ${rows.reduce((a, r) => a + r.ids.length, 0)} ids over ${rows.length} texts`);
}
fs.writeFileSync(path.join(out, "expected.json"), JSON.stringify(expected));
