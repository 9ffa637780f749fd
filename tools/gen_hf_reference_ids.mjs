// Writes reference token ids for a Hugging Face tokenizer.json, computed by
// transformers.js's tokenizer code (npm package @lenml/tokenizers, an
// independent JavaScript implementation of HF tokenizers), for
// tests/tokenizer_hf_test.cpp.
//
//   mkdir /tmp/ref && cd /tmp/ref && npm install @lenml/tokenizers@3.7.2
//   NODE_PATH=/tmp/ref/node_modules node tools/gen_hf_reference_ids.mjs \
//       ../shared/models/hf-tokenizers/gemma3 > tests/data/gemma3_reference_ids.json
//
// The same tool reproduces llama.cpp's ggml-vocab-llama-bpe and -qwen2 .out
// files exactly (46/46 each) from hf-tokenizers/llama3 and /qwen3.
import { createRequire } from "module";
import fs from "fs";
import path from "path";

const require = createRequire(import.meta.url);
const { TokenizerLoader } = require("@lenml/tokenizers");

const dir = process.argv[2];
const tokenizerJSON = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer.json"), "utf8"));
const tokenizerConfig = JSON.parse(fs.readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"));
const tokenizer = TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });

const texts = [
  "Hello world",
  "Hello, world! How are you today?",
  "The quick brown fox jumps over the lazy dog.",
  "I believe the meaning of life is",
  "1234567890 3.14159 1e-5",
  "def f(x):\n    return x * 2",
  "你好，世界！这是一个测试。",
  "日本語のテキストも大丈夫です。",
  "Привет, мир!",
  "Ünïcödé çharacters — “quotes” and emoji 🐝🍯",
  "Line one\nLine two\n\nParagraph",
  "<b>bold</b> and <i>italic</i>",
  "It's a dog's life, isn't it?",
  "e = mc^2; a_b = {x | x > 0}",
  "\u{1F680} rocket \u{1F99C}\u{1F99C}",
  "नमस्ते दुनिया",
  "supercalifragilisticexpialidocious antidisestablishmentarianism",
  // runs of spaces, tabs and newlines are user-defined tokens in Gemma
  "a  b",
  "x   \n\n\ty",
  "    indented",
  "trailing   ",
  "\n\n\n\nend",
  " leading space",
  "tab\there",
];

const cases = texts.map((text) => ({ text, ids: Array.from(tokenizer.encode(text, { add_special_tokens: false })) }));
const out = {
  source: "transformers.js tokenizer (@lenml/tokenizers 3.7.2) on " + path.basename(dir) + "/tokenizer.json, add_special_tokens=false",
  generator: "tools/gen_hf_reference_ids.mjs",
  cases,
};
process.stdout.write(JSON.stringify(out, null, 1) + "\n");
