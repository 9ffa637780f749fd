// Structured output and tool calls through the client libraries people use, unmodified,
// each with its own parse helper: the npm `ollama` package (`format` with a
// JSON schema), `openai` (`chat.completions.parse` with a json_schema
// response_format), LangChain (`withStructuredOutput` on ChatOllama and
// ChatOpenAI) and the Vercel AI SDK (`generateObject` through
// ollama-ai-provider-v2 and @ai-sdk/openai-compatible). The model is the
// random-weight test model: only constrained decoding can make its output
// parse and validate, so every check here fails without it.
// usage: node node_structured.mjs BASE_URL MODEL
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';
import OpenAI from 'openai';
import { ChatOllama } from '@langchain/ollama';
import { ChatOpenAI } from '@langchain/openai';
import { generateObject, generateText, tool } from 'ai';
import { createOllama } from 'ollama-ai-provider-v2';
import { createOpenAICompatible } from '@ai-sdk/openai-compatible';
import { z } from 'zod';

const [base, model] = process.argv.slice(2);
let checks = 0;
const ok = (name) => { checks++; console.log(`ok - ${name}`); };

const hive = z.object({
  name: z.string().max(12),
  frames: z.number().int().min(1).max(20),
  kind: z.enum(['layens', 'langstroth', 'warre']),
  healthy: z.boolean(),
});
const hiveSchema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 12 },
    frames: { type: 'integer', minimum: 1, maximum: 20 },
    kind: { enum: ['layens', 'langstroth', 'warre'] },
    healthy: { type: 'boolean' },
  },
  required: ['name', 'frames', 'kind', 'healthy'],
  additionalProperties: false,
};
const question = 'Describe one beehive as JSON.';
const checkHive = (value, where) => {
  const parsed = hive.safeParse(value);
  assert.ok(parsed.success, `${where}: ${JSON.stringify(value)} ${parsed.success ? '' : JSON.stringify(parsed.error.issues)}`);
};

// --- ollama: format = JSON schema, and format = "json" ----------------------
const ollama = new Ollama({ host: base });
const chat = await ollama.chat({
  model, format: hiveSchema, options: { temperature: 0, num_predict: 96 },
  messages: [{ role: 'user', content: question }],
});
checkHive(JSON.parse(chat.message.content), 'ollama.chat format schema');
ok('ollama.chat with format: JSON schema parses and validates');
const anyJson = await ollama.generate({ model, prompt: question, format: 'json', options: { temperature: 0.7, seed: 3, num_predict: 64 } });
assert.doesNotThrow(() => JSON.parse(anyJson.response), anyJson.response);
ok('ollama.generate with format: "json" parses');

// --- openai: chat.completions.parse ------------------------------------------
const openai = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'not-needed' });
const completion = await openai.chat.completions.parse({
  model, temperature: 0, max_tokens: 96, messages: [{ role: 'user', content: question }],
  response_format: { type: 'json_schema', json_schema: { name: 'hive', strict: true, schema: hiveSchema } },
});
checkHive(completion.choices[0].message.parsed, 'openai .parse()');
ok('openai chat.completions.parse with a strict json_schema');
const jsonObject = await openai.chat.completions.create({
  model, temperature: 0, max_tokens: 64, response_format: { type: 'json_object' },
  messages: [{ role: 'user', content: question }],
});
assert.doesNotThrow(() => JSON.parse(jsonObject.choices[0].message.content));
ok('openai response_format json_object parses');

// --- LangChain ----------------------------------------------------------------
const chatOllama = new ChatOllama({ baseUrl: base, model, temperature: 0, numPredict: 96 });
checkHive(await chatOllama.withStructuredOutput(hive).invoke(question), 'ChatOllama');
ok('LangChain ChatOllama.withStructuredOutput(zod)');
const chatOpenAI = new ChatOpenAI({
  model, temperature: 0, maxTokens: 96, apiKey: 'not-needed', configuration: { baseURL: `${base}/v1` },
});
checkHive(await chatOpenAI.withStructuredOutput(hive).invoke(question), 'ChatOpenAI');
ok('LangChain ChatOpenAI.withStructuredOutput(zod)');

// --- Vercel AI SDK --------------------------------------------------------------
const viaOllama = createOllama({ baseURL: `${base}/api` });
const fromOllama = await generateObject({
  model: viaOllama(model), schema: hive, prompt: question, temperature: 0, maxOutputTokens: 96,
});
checkHive(fromOllama.object, 'AI SDK ollama provider');
ok('AI SDK generateObject via ollama-ai-provider-v2');
const viaOpenAI = createOpenAICompatible({ name: 'flatline', baseURL: `${base}/v1`, supportsStructuredOutputs: true });
const fromOpenAI = await generateObject({
  model: viaOpenAI.chatModel(model), schema: hive, prompt: question, temperature: 0, maxOutputTokens: 96,
});
checkHive(fromOpenAI.object, 'AI SDK openai-compatible provider');
ok('AI SDK generateObject via @ai-sdk/openai-compatible');

// --- tools through LangChain and the AI SDK -------------------------------------
// With tool_choice required the call is constrained to the tool's schema, so
// the garbage-weight model's arguments still validate.
const weatherArgs = z.object({ city: z.string().max(16), unit: z.enum(['celsius', 'fahrenheit']) });
const checkCalls = (calls, argsOf, where) => {
  assert.ok(calls.length >= 1, `${where}: no tool call`);
  for (const c of calls) {
    const parsed = weatherArgs.safeParse(argsOf(c));
    assert.ok(parsed.success, `${where}: ${JSON.stringify(c)}`);
  }
};
const weatherTool = { name: 'get_weather', description: 'Current weather in a city', schema: weatherArgs };
const lcCalls = await chatOpenAI.bindTools([weatherTool], { tool_choice: 'required' }).invoke('Weather in Paris?');
checkCalls(lcCalls.tool_calls, (c) => c.args, 'ChatOpenAI.bindTools');
assert.equal(lcCalls.tool_calls[0].name, 'get_weather');
ok('LangChain ChatOpenAI.bindTools with tool_choice required');
// Ollama's API has no tool_choice: the model may or may not call; the reply must still parse.
const lcAuto = await chatOllama.bindTools([weatherTool]).invoke('Weather in Paris?');
assert.ok(Array.isArray(lcAuto.tool_calls));
for (const c of lcAuto.tool_calls) assert.equal(c.name, 'get_weather');
ok(`LangChain ChatOllama.bindTools (auto: ${lcAuto.tool_calls.length} calls)`);
const aiTools = { get_weather: tool({ description: 'Current weather in a city', inputSchema: weatherArgs }) };
for (const [label, m] of [['@ai-sdk/openai-compatible', viaOpenAI.chatModel(model)], ['ollama-ai-provider-v2', viaOllama(model)]]) {
  const r = await generateText({
    model: m, prompt: 'Weather in Paris?', temperature: 0, maxOutputTokens: 96, tools: aiTools, toolChoice: 'required',
  });
  checkCalls(r.toolCalls, (c) => c.input, label);
  ok(`AI SDK generateText tools (toolChoice required) via ${label}: ${r.toolCalls.length} call(s)`);
}

console.log(`${checks} passed, 0 failed`);
