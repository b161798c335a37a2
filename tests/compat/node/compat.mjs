// The Node openai package, with its defaults, against Hanchang: chat, a stream, embeddings (the
// package asks base64 by default and decodes it), and the Responses API. Prints one JSON line.
import OpenAI from "openai";

const client = new OpenAI({ baseURL: process.env.HANCHANG_V1, apiKey: process.env.HANCHANG_KEY, maxRetries: 0 });
const model = process.env.HANCHANG_MODEL;
const out = {};

const chat = await client.chat.completions.create({ model, messages: [{ role: "user", content: "연가 규정" }] });
out.chat = chat.choices[0].message.content;

let streamed = "";
let emptyChoiceChunks = 0;
for await (const chunk of await client.chat.completions.create({
  model, stream: true, messages: [{ role: "user", content: "하나 둘 셋" }] })) {
  if (chunk.choices.length === 0) emptyChoiceChunks += 1;
  streamed += chunk.choices[0]?.delta?.content ?? "";
}
out.stream = streamed;
out.emptyChoiceChunks = emptyChoiceChunks;

const embedded = await client.embeddings.create({ model: process.env.HANCHANG_EMBED_MODEL, input: ["가", "나"] });
out.embeddingLengths = embedded.data.map((d) => d.embedding.length);
out.embeddingFirst = embedded.data[0].embedding[0];

const response = await client.responses.create({ model, input: "출장비 기준", instructions: "짧게" });
out.responseText = response.output_text;
let responseStreamed = "";
for await (const event of await client.responses.create({ model, input: "넷 다섯", stream: true })) {
  if (event.type === "response.output_text.delta") responseStreamed += event.delta;
}
out.responseStream = responseStreamed;

console.log(JSON.stringify(out));
