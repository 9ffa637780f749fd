// Drives `flatline serve` with the official npm clients `ollama`, `openai`
// and `@anthropic-ai/sdk` (installed by run_client_tests.sh): if their
// parsers accept our responses, real applications built on them will too.
// usage: node node_clients.mjs BASE_URL MODEL RESPONSE_ID_FILE
//        node node_clients.mjs BASE_URL MODEL RESPONSE_ID_FILE --after-restart
// The first run writes the id of a stored /v1/responses response to
// RESPONSE_ID_FILE; the second (after the server restarted on the same
// --state-dir) continues it by previous_response_id.
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import Anthropic from '@anthropic-ai/sdk';
import { Ollama } from 'ollama';
import OpenAI from 'openai';

const [base, model, responseIdFile, phase] = process.argv.slice(2);
const ollama = new Ollama({ host: base });
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed' });
const options = { temperature: 0, num_predict: 12 };
let checks = 0;
const ok = (name) => { checks++; console.log(`ok - ${name}`); };

// --- openai responses, after a restart --------------------------------------
const textOf = (r) => r.output.flatMap((item) => item.content.map((part) => part.text)).join('');
if (phase === '--after-restart') {
  const { first, second } = JSON.parse(readFileSync(responseIdFile, 'utf8'));
  const r1 = await openai.responses.retrieve(first);
  const r2 = await openai.responses.retrieve(second);
  assert.equal(r2.previous_response_id, first);
  const followUp = await openai.responses.create({
    model, previous_response_id: second, input: 'How do you harvest honey?', temperature: 0, max_output_tokens: 12,
  });
  assert.equal(followUp.previous_response_id, second);
  const u = followUp.usage;
  const evaluated = u.input_tokens - u.input_tokens_details.cached_tokens;
  // Resumed at least where the stored response's reply began (its reply's
  // end, when the reply starts with the space the template puts after
  // "Assistant:", which this random model's need not).
  assert.ok(u.input_tokens_details.cached_tokens >= r2.usage.input_tokens, JSON.stringify(u));
  // The same conversation in full, through chat completions: the same greedy reply.
  const full = await openai.chat.completions.create({
    model, temperature: 0, max_tokens: 12,
    messages: [{ role: 'user', content: 'What is beekeeping?' }, { role: 'assistant', content: textOf(r1) },
      { role: 'user', content: 'And Layens hives?' }, { role: 'assistant', content: textOf(r2) },
      { role: 'user', content: 'How do you harvest honey?' }],
  });
  assert.equal(followUp.output_text, full.choices[0].message.content);
  assert.equal(u.input_tokens, full.usage.prompt_tokens);
  ok(`openai responses.create with previous_response_id after a restart (evaluated ${evaluated} of ${u.input_tokens} tokens)`);
  const gone = await openai.responses.delete(second);
  assert.equal(gone?.deleted ?? true, true);
  await assert.rejects(openai.responses.retrieve(second), (e) => e.status === 404);
  ok('openai responses.delete');
  console.log(`${checks} passed, 0 failed`);
  process.exit(0);
}

// --- ollama ---------------------------------------------------------------
const list = await ollama.list();
assert.ok(list.models.some((m) => m.name === `${model}:latest`), JSON.stringify(list));
assert.equal(typeof list.models[0].details.family, 'string');
ok('ollama.list');

const show = await ollama.show({ model });
assert.equal(show.model_info['general.architecture'], 'rwkv7');
ok('ollama.show');

const messages = [{ role: 'user', content: 'What is beekeeping?' }];
const chat = await ollama.chat({ model, messages, options });
assert.equal(chat.message.role, 'assistant');
assert.equal(typeof chat.message.content, 'string');
assert.equal(chat.done, true);
assert.ok(chat.eval_count > 0 && chat.eval_count <= 12);
assert.ok(chat.prompt_eval_count > 0);
assert.ok(chat.total_duration >= chat.eval_duration);
ok('ollama.chat');

let streamed = '';
let last;
for await (const part of await ollama.chat({ model, messages, options, stream: true })) {
  streamed += part.message.content;
  last = part;
}
assert.equal(last.done, true);
assert.equal(streamed, chat.message.content);
ok('ollama.chat stream');

// A second turn resends the history: the server reuses the first turn's state.
const turn2 = await ollama.chat({
  model,
  messages: [...messages, chat.message, { role: 'user', content: 'And Layens hives?' }],
  options,
});
const fullPrompt = `User: What is beekeeping?\n\nAssistant: ${chat.message.content.trim()}\n\nUser: And Layens hives?\n\nAssistant:`;
assert.ok(turn2.prompt_eval_count < fullPrompt.length, `prompt_eval_count ${turn2.prompt_eval_count}`);
ok('ollama.chat second turn reuses state');

const gen = await ollama.generate({ model, prompt: 'Once upon a time', options });
assert.equal(typeof gen.response, 'string');
assert.ok(Array.isArray(gen.context));
ok('ollama.generate');

const ps = await ollama.ps();
assert.ok(ps.models.some((m) => m.name === `${model}:latest`));
ok('ollama.ps');

await assert.rejects(ollama.chat({ model: 'no-such-model', messages }), (e) => {
  assert.equal(e.status_code, 404);
  assert.match(e.error, /not found/);
  return true;
});
ok('ollama error for an unknown model');

const norm = (v) => Math.sqrt(v.reduce((s, x) => s + x * x, 0));
const embed = await ollama.embed({ model, input: ['What is beekeeping?', 'Layens hives'] });
assert.equal(embed.embeddings.length, 2);
assert.ok(Math.abs(norm(embed.embeddings[0]) - 1) < 1e-5);
assert.ok(embed.prompt_eval_count > 0);
const single = await ollama.embed({ model, input: 'Layens hives' });
assert.deepEqual(single.embeddings[0], embed.embeddings[1]);
ok('ollama.embed');

// --- openai ---------------------------------------------------------------
const completion = await openai.chat.completions.create({ model, messages, max_tokens: 12, temperature: 0 });
assert.equal(completion.object, 'chat.completion');
assert.equal(completion.choices[0].message.role, 'assistant');
assert.equal(completion.choices[0].message.content, chat.message.content);
assert.ok(completion.usage.total_tokens > 0);
ok('openai chat.completions');

let text = '';
let finish = null;
let usage = null;
const stream = await openai.chat.completions.create({
  model, messages, max_tokens: 12, temperature: 0, stream: true, stream_options: { include_usage: true },
});
for await (const chunk of stream) {
  if (chunk.usage) usage = chunk.usage;
  for (const choice of chunk.choices) {
    text += choice.delta.content ?? '';
    if (choice.finish_reason) finish = choice.finish_reason;
  }
}
assert.equal(text, chat.message.content);
assert.ok(finish === 'stop' || finish === 'length');
assert.ok(usage && usage.completion_tokens > 0);
ok('openai chat.completions stream');

const legacy = await openai.completions.create({ model, prompt: 'Once upon a time', max_tokens: 8, temperature: 0 });
assert.equal(typeof legacy.choices[0].text, 'string');
ok('openai completions');

// The SDK asks for base64 by default and decodes it: the same floats as the Ollama API's.
const oaiEmbed = await openai.embeddings.create({ model, input: ['What is beekeeping?', 'Layens hives'] });
assert.equal(oaiEmbed.data.length, 2);
assert.equal(oaiEmbed.data[1].index, 1);
for (let i = 0; i < 2; i++) {
  const a = oaiEmbed.data[i].embedding, b = embed.embeddings[i];
  assert.equal(a.length, b.length);
  assert.ok(a.every((x, k) => Math.abs(x - b[k]) < 1e-6), `embedding ${i} differs`);
}
assert.ok(oaiEmbed.usage.prompt_tokens > 0);
const floats = await openai.embeddings.create({ model, input: 'Layens hives', encoding_format: 'float', dimensions: 8 });
assert.equal(floats.data[0].embedding.length, 8);
ok('openai embeddings');

const ids = [];
for await (const m of openai.models.list()) ids.push(m.id);
assert.ok(ids.includes(`${model}:latest`), ids.join(','));
const one = await openai.models.retrieve(model);
assert.equal(one.id, model);
ok('openai models');

await assert.rejects(openai.chat.completions.create({ model: 'no-such-model', messages }), (e) => {
  assert.equal(e.status, 404);
  return true;
});
ok('openai error for an unknown model');

// --- tools -------------------------------------------------------------------
// The random model has no tools-aware template (the generic prompt); with
// tool_choice required the reply is a call whose arguments match the schema.
const tools = [{
  type: 'function',
  function: {
    name: 'get_weather', description: 'The weather in a city',
    parameters: { type: 'object', properties: { city: { type: 'string', maxLength: 12 }, unit: { enum: ['C', 'F'] } },
      required: ['city', 'unit'] },
  },
}];
const checkArgs = (a) => {
  assert.equal(typeof a.city, 'string');
  assert.ok(a.city.length <= 12);
  assert.ok(['C', 'F'].includes(a.unit), JSON.stringify(a));
};
const toolQuestion = [{ role: 'user', content: 'Weather in Oslo?' }];
// tool_choice is OpenAI's; flatline's /api/chat takes it too (the client passes it through).
const toolChat = await ollama.chat({ model, messages: toolQuestion, tools, tool_choice: 'required', parallel_tool_calls: false,
  options: { temperature: 1, seed: 3, num_predict: 200 } });
assert.equal(toolChat.message.tool_calls.length, 1, JSON.stringify(toolChat.message));
assert.equal(toolChat.message.tool_calls[0].function.name, 'get_weather');
checkArgs(toolChat.message.tool_calls[0].function.arguments);
const toolTurn2 = await ollama.chat({
  model, tools, options: { temperature: 0, num_predict: 4 },
  messages: [...toolQuestion, toolChat.message, { role: 'tool', tool_name: 'get_weather', content: '{"temp": 21}' }],
});
assert.ok(toolTurn2.prompt_eval_count < 100, `prompt_eval_count ${toolTurn2.prompt_eval_count} after a tool call`);
ok(`ollama.chat tools round trip (second turn evaluated ${toolTurn2.prompt_eval_count} of ${toolChat.prompt_eval_count}+ tokens)`);

const oaiTool = await openai.chat.completions.create({
  model, messages: toolQuestion, tools, tool_choice: { type: 'function', function: { name: 'get_weather' } },
  temperature: 1, seed: 4, max_tokens: 200,
});
assert.equal(oaiTool.choices[0].finish_reason, 'tool_calls');
const oaiCall = oaiTool.choices[0].message.tool_calls[0];
assert.equal(oaiCall.function.name, 'get_weather');
checkArgs(JSON.parse(oaiCall.function.arguments));
const oaiTurn2 = await openai.chat.completions.create({
  model, tools, temperature: 0, max_tokens: 4,
  messages: [...toolQuestion, oaiTool.choices[0].message, { role: 'tool', tool_call_id: oaiCall.id, content: '{"temp": 21}' }],
});
const oaiEvaluated = oaiTurn2.usage.prompt_tokens - oaiTurn2.usage.prompt_tokens_details.cached_tokens;
assert.ok(oaiEvaluated < 100, JSON.stringify(oaiTurn2.usage));
ok('openai chat.completions tools round trip');

let streamedArgs = '';
let toolFinish = null;
for await (const chunk of await openai.chat.completions.create({
  model, messages: toolQuestion, tools, tool_choice: 'required', parallel_tool_calls: false, temperature: 1, seed: 5, max_tokens: 200, stream: true,
})) {
  for (const choice of chunk.choices) {
    for (const tc of choice.delta.tool_calls ?? []) streamedArgs += tc.function?.arguments ?? '';
    if (choice.finish_reason) toolFinish = choice.finish_reason;
  }
}
assert.equal(toolFinish, 'tool_calls');
checkArgs(JSON.parse(streamedArgs));
ok('openai chat.completions tools stream');

// --- the seed's Option B: a Modelfile naming the GGUF file, create, list, chat, delete
const modelfile = `FROM ./${model}.gguf\nPARAMETER temperature 0\nPARAMETER num_predict 6\nSYSTEM You answer briefly.\n`;
const progress = [];
for await (const p of await ollama.create({ model: 'rwkv7:optionb', modelfile, stream: true })) progress.push(p.status);
assert.equal(progress.at(-1), 'success', progress.join(' | '));
ok('ollama.create from a Modelfile (streamed status)');

const listed = await ollama.list();
assert.ok(listed.models.some((m) => m.name === 'rwkv7:optionb'), JSON.stringify(listed.models.map((m) => m.name)));
ok('ollama.list shows the created model');

const viaAlias = await ollama.chat({ model: 'rwkv7:optionb', messages });
const viaFile = await ollama.chat({
  model, messages: [{ role: 'system', content: 'You answer briefly.' }, ...messages],
  options: { temperature: 0, num_predict: 6 },
});
assert.equal(viaAlias.eval_count, 6);
assert.equal(viaAlias.message.content, viaFile.message.content);
ok('ollama.chat with the created model uses its PARAMETER and SYSTEM');

const created = await ollama.create({ model: 'rwkv7:jsonform', from: model, parameters: { num_predict: 3 }, stream: false });
assert.equal(created.status, 'success');
await ollama.copy({ source: 'rwkv7:jsonform', destination: 'rwkv7:copied' });
assert.equal((await ollama.chat({ model: 'rwkv7:copied', messages })).eval_count, 3);
ok('ollama.create (JSON form) and ollama.copy');

const pulled = await ollama.pull({ model: 'rwkv7:optionb' });
assert.equal(pulled.status, 'success');
await assert.rejects(ollama.pull({ model: 'llama3.2' }), (e) => {
  assert.match(e.error, /does not download/);
  return true;
});
ok('ollama.pull: success for a present model, a clear error otherwise');

for (const name of ['rwkv7:optionb', 'rwkv7:jsonform', 'rwkv7:copied']) await ollama.delete({ model: name });
const after = await ollama.list();
assert.ok(!after.models.some((m) => m.name.startsWith('rwkv7:')));
assert.ok(after.models.some((m) => m.name === `${model}:latest`));
await assert.rejects(ollama.delete({ model }), (e) => {
  assert.equal(e.status_code, 403);
  return true;
});
ok('ollama.delete removes the aliases, never the GGUF file');
// --- openai responses --------------------------------------------------------
const r1 = await openai.responses.create({ model, input: 'What is beekeeping?', temperature: 0, max_output_tokens: 12 });
assert.equal(r1.object, 'response');
assert.equal(r1.output_text, chat.message.content);
assert.equal(r1.usage.input_tokens_details.cached_tokens > 0, true, 'the same prompt as ollama.chat: cached');
const r2 = await openai.responses.create({
  model, previous_response_id: r1.id, input: [{ role: 'user', content: [{ type: 'input_text', text: 'And Layens hives?' }] }],
  temperature: 0, max_output_tokens: 12,
});
assert.ok(r2.usage.input_tokens_details.cached_tokens >= r1.usage.input_tokens, JSON.stringify(r2.usage));
ok('openai responses.create with previous_response_id');

const events = [];
let streamedText = '';
for await (const event of await openai.responses.create({
  model, input: 'What is beekeeping?', temperature: 0, max_output_tokens: 12, stream: true,
})) {
  events.push(event.type);
  if (event.type === 'response.output_text.delta') streamedText += event.delta;
}
assert.equal(events[0], 'response.created');
assert.ok(['response.completed', 'response.incomplete'].includes(events.at(-1)), events.join(','));
assert.equal(streamedText, r1.output_text);
ok('openai responses.create stream');
await assert.rejects(openai.responses.create({ model, previous_response_id: 'resp_nope', input: 'x' }), (e) => e.status === 400);
ok('openai responses error for a malformed id');
writeFileSync(responseIdFile, JSON.stringify({ first: r1.id, second: r2.id }));

// --- anthropic ---------------------------------------------------------------
const anthropic = new Anthropic({ baseURL: base, apiKey: 'not-needed' });
const msg = await anthropic.messages.create({
  model, max_tokens: 12, temperature: 0, messages: [{ role: 'user', content: 'What is beekeeping?' }],
});
assert.equal(msg.type, 'message');
assert.equal(msg.content[0].text, chat.message.content);
assert.ok(['end_turn', 'max_tokens'].includes(msg.stop_reason));
ok('anthropic messages.create');
let anthropicText = '';
const anthropicStream = anthropic.messages.stream({
  model, max_tokens: 12, temperature: 0, messages: [{ role: 'user', content: 'What is beekeeping?' }],
});
anthropicStream.on('text', (t) => { anthropicText += t; });
const final = await anthropicStream.finalMessage();
assert.equal(anthropicText, chat.message.content);
assert.equal(final.content[0].text, chat.message.content);
ok('anthropic messages.stream');

console.log(`${checks} passed, 0 failed`);
