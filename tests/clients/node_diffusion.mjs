// A diffusion model (LLaDA) through the npm `ollama` package, unmodified:
// a streaming /api/chat shows the reply arriving block by block (each
// committed block is one chunk), and the final chunk's counters are honest.
// usage: node node_diffusion.mjs BASE_URL MODEL
import assert from 'node:assert/strict';
import { Ollama } from 'ollama';

const [base, model] = process.argv.slice(2);
const ollama = new Ollama({ host: base });
const blockLength = 4;
const generated = 16;
const options = {
  temperature: 0, num_predict: generated, diffusion_steps: 8, diffusion_block_length: blockLength,
};

const stream = await ollama.chat({
  model, stream: true, options, messages: [{ role: 'user', content: 'Tell me about bees.' }],
});
const textChunks = [];
let last = null;
for await (const part of stream) {
  if (part.message?.content) textChunks.push(part.message.content);
  last = part;
}
assert.ok(last?.done, 'the stream ends with a done chunk');
assert.equal(last.eval_count, generated, JSON.stringify(last));
// 16 tokens in blocks of 4: four commits, each streamed as it is decided. A
// block of a random-weight model may decode to nothing (padding tokens), so
// at least two text chunks, never everything at once.
assert.ok(textChunks.length >= 2, `text arrived in ${textChunks.length} chunk(s): ${JSON.stringify(textChunks)}`);
assert.ok(textChunks.length <= generated / blockLength, JSON.stringify(textChunks));
console.log(`ok - ollama chat stream on a diffusion model: ${textChunks.length} block chunks, eval_count ${last.eval_count}`);

const reply = await ollama.chat({ model, stream: false, options, messages: [{ role: 'user', content: 'Tell me about bees.' }] });
assert.equal(reply.message.content, textChunks.join(''), 'the non-streaming reply equals the streamed blocks joined');
console.log('ok - ollama chat (no stream) on a diffusion model gives the same text');
console.log('2 passed, 0 failed');
