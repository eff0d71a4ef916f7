// Renders every chat template of tests/reference/fixtures/chat_templates over the message lists of
// cases.json with @huggingface/jinja, into expected.json (an error message where the template
// raises). Run: make chat-fixtures (installs @huggingface/jinja from tests/reference/chat/package.json).
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

// @huggingface/jinja's own strftime_now() reads the clock: pin it to 2025-06-28 12:00 local time.
const RealDate = Date;
globalThis.Date = class extends RealDate {
  constructor(...args) {
    super(...(args.length ? args : [2025, 5, 28, 12, 0, 0]));
  }
  static now() {
    return new RealDate(2025, 5, 28, 12, 0, 0).getTime();
  }
};

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, "chat", "package.json"));
const { Template } = await import(require.resolve("@huggingface/jinja"));
const dir = path.join(here, "fixtures", "chat_templates");
const spec = JSON.parse(readFileSync(path.join(dir, "cases.json"), "utf8"));
const pkg = JSON.parse(readFileSync(path.join(here, "chat", "node_modules", "@huggingface", "jinja", "package.json"), "utf8"));
const out = { generator: "@huggingface/jinja " + pkg.version, templates: {} };
for (const file of readdirSync(dir).filter((f) => f.endsWith(".jinja")).sort()) {
  const name = file.replace(/\.jinja$/, "");
  const template = new Template(readFileSync(path.join(dir, file), "utf8"));
  const rows = {};
  for (const c of spec.cases) {
    const vars = {
      messages: c.messages,
      add_generation_prompt: c.add_generation_prompt,
      bos_token: spec.bos_token[name],
      eos_token: spec.eos_token[name],
      ...(c.extra ?? {}),
    };
    if (c.tools) vars.tools = c.tools;
    try {
      rows[c.name] = { text: template.render(vars) };
    } catch (e) {
      rows[c.name] = { error: String(e.message ?? e) };
    }
  }
  out.templates[name] = rows;
}
writeFileSync(path.join(dir, "expected.json"), JSON.stringify(out, null, 1) + "\n");
console.log(`wrote ${Object.keys(out.templates).length} templates x ${spec.cases.length} cases`);
