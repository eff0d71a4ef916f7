// Drives a running `moe serve` with the npm openai client (tests/serve/server_test.cc runs it):
// models, chat and text completions streamed and not (the streamed text must equal the
// non-streamed one for the same seed), usage, and a 400 surfacing as openai.BadRequestError.
// Usage: node openai_client.mjs BASE_URL MODEL  (exit 0 when every check holds)
import OpenAI from "openai";

const [baseURL, model] = process.argv.slice(2);
const client = new OpenAI({ baseURL, apiKey: "unused", maxRetries: 0 });
const failures = [];
const check = (ok, what) => {
  if (!ok) failures.push(what);
};

const models = await client.models.list();
check(models.data.some((m) => m.id === model), `models lists ${model}`);

const messages = [{ role: "user", content: "Hello 👋" }];
const params = { model, messages, max_tokens: 10, temperature: 0.8, seed: 5 };
const chat = await client.chat.completions.create(params);
const text = chat.choices[0].message.content;
check(chat.usage.completion_tokens > 0, "chat usage.completion_tokens > 0");
let streamed = "";
let finish = null;
for await (const chunk of await client.chat.completions.create({ ...params, stream: true })) {
  streamed += chunk.choices[0]?.delta?.content ?? "";
  finish = chunk.choices[0]?.finish_reason ?? finish;
}
check(streamed === text, `chat stream equals non-stream: ${JSON.stringify(streamed)} vs ${JSON.stringify(text)}`);
check(finish === chat.choices[0].finish_reason, "chat stream finish_reason");

const cparams = { model, prompt: "Once", max_tokens: 8, temperature: 1.0, seed: 9 };
const completion = await client.completions.create(cparams);
let cstreamed = "";
for await (const chunk of await client.completions.create({ ...cparams, stream: true })) cstreamed += chunk.choices[0]?.text ?? "";
check(cstreamed === completion.choices[0].text, "completion stream equals non-stream");

try {
  await client.chat.completions.create({ ...params, n: 2 });
  check(false, "n = 2 is refused");
} catch (e) {
  check(e instanceof OpenAI.BadRequestError && e.status === 400, `n = 2 gives BadRequestError 400, got ${e}`);
}

console.log(JSON.stringify({ checks_failed: failures, chat: text, completion: completion.choices[0].text }));
process.exit(failures.length === 0 ? 0 : 1);
