// flatline's chat page. It talks to the server through the same routes every
// client uses (/api/tags, /api/chat streaming NDJSON) plus
// GET /flatline/stats for the per-turn figures (docs/SERVER.md). Model output
// is only ever put into the page as text nodes (markdown.js builds DOM nodes),
// and the server's Content-Security-Policy forbids inline script as a
// second line of defence.
import { renderMarkdown } from './markdown.js';
import { lineChart, formatBytes } from './charts.js';
import * as store from './store.js';

const $ = (id) => document.getElementById(id);

const state = {
  settings: store.loadSettings(),
  conv: null,
  models: [],
  running: null,         // { conv, msg, controller } while a reply streams
  bodies: new WeakMap(), // message -> its rendered body element
  renderQueued: false,
};

// ---------------------------------------------------------------------------
// Small DOM helpers

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function icon(path) {
  const s = document.createElementNS('http://www.w3.org/2000/svg', 'svg');
  s.setAttribute('viewBox', '0 0 24 24');
  s.setAttribute('class', 'icon');
  s.setAttribute('aria-hidden', 'true');
  const p = document.createElementNS('http://www.w3.org/2000/svg', 'path');
  p.setAttribute('d', path);
  s.appendChild(p);
  return s;
}

const ICON_COPY = 'M9 9h10v10H9zM5 15V5h10';
const ICON_DONE = 'M5 12l5 5L20 7';
const ICON_TRASH = 'M5 7h14M10 7V5h4v2M7 7l1 12h8l1-12';
const ICON_RETRY = 'M4 12a8 8 0 1 0 2.3-5.7M4 4v4h4';

async function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) {
    await navigator.clipboard.writeText(text);
    return;
  }
  // Plain http from another machine: no Clipboard API there.
  const area = el('textarea');
  area.value = text;
  area.setAttribute('readonly', '');
  area.className = 'offscreen';
  document.body.appendChild(area);
  area.select();
  document.execCommand('copy');
  area.remove();
}

function copyButton(getText, label = 'Copy') {
  const b = el('button', 'mini-button copy-button');
  b.type = 'button';
  b.title = label;
  b.setAttribute('aria-label', label);
  b.appendChild(icon(ICON_COPY));
  b.appendChild(el('span', 'mini-label', 'copy'));
  b.addEventListener('click', async () => {
    try {
      await copyText(getText());
      b.classList.add('done');
      b.replaceChildren(icon(ICON_DONE), el('span', 'mini-label', 'copied'));
      setTimeout(() => { b.classList.remove('done'); b.replaceChildren(icon(ICON_COPY), el('span', 'mini-label', 'copy')); }, 1500);
    } catch (e) {
      showNotice('Could not copy: ' + e.message);
    }
  });
  return b;
}

function showNotice(text, kind = 'error') {
  const n = $('notice');
  n.replaceChildren(el('span', '', text));
  const close = el('button', 'mini-button', '×');
  close.type = 'button';
  close.setAttribute('aria-label', 'Dismiss');
  close.addEventListener('click', () => { n.hidden = true; });
  n.appendChild(close);
  n.className = 'notice ' + kind;
  n.hidden = false;
}

function hideNotice() { $('notice').hidden = true; }

// ---------------------------------------------------------------------------
// The server

class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

function headers(json) {
  const h = {};
  if (json) h['Content-Type'] = 'application/json';
  if (state.settings.apiKey) h.Authorization = 'Bearer ' + state.settings.apiKey;
  return h;
}

async function errorOf(res) {
  let message = `${res.status} ${res.statusText}`;
  try {
    const j = await res.json();
    if (typeof j.error === 'string') message = j.error;
    else if (j.error && typeof j.error.message === 'string') message = j.error.message;
  } catch { /* not JSON: keep the status line */ }
  if (res.status === 401) {
    message = 'This server needs an API key: enter it in the settings (⚙).';
    openSettings(true);
    $('api-key').focus();
  }
  return new ApiError(res.status, message);
}

async function api(path, body) {
  const init = body === undefined ? { headers: headers(false) } : { method: 'POST', headers: headers(true), body: JSON.stringify(body) };
  const res = await fetch(path, init);
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

// Calls onLine with each JSON object of an NDJSON response as it arrives.
async function readNdjson(res, onLine) {
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let nl;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl).trim();
      buffer = buffer.slice(nl + 1);
      if (line) onLine(JSON.parse(line));
    }
  }
  buffer += decoder.decode();
  if (buffer.trim()) onLine(JSON.parse(buffer));
}

function displayName(name) { return name.endsWith(':latest') ? name.slice(0, -7) : name; }

async function loadModels() {
  try {
    const r = await api('/api/tags');
    state.models = (Array.isArray(r.models) ? r.models : [])
      .filter((m) => m && typeof m.name === 'string')
      .sort((a, b) => a.name.localeCompare(b.name));
  } catch (e) {
    state.models = [];
    showNotice('Cannot list the models: ' + e.message);
  }
  renderModelSelect();
}

function renderModelSelect() {
  const select = $('model-select');
  select.replaceChildren();
  if (state.models.length === 0) {
    const o = el('option', '', 'no models on the server');
    o.value = '';
    select.appendChild(o);
    select.disabled = true;
    return;
  }
  select.disabled = false;
  for (const m of state.models) {
    const d = m.details || {};
    const extra = [d.parameter_size, d.quantization_level].filter((x) => typeof x === 'string' && x).join(' ');
    const o = el('option', '', displayName(m.name) + (extra ? ` · ${extra}` : ''));
    o.value = m.name;
    select.appendChild(o);
  }
  const names = state.models.map((m) => m.name);
  const wanted = [state.conv?.model, state.settings.model].find((n) => n && names.includes(n));
  select.value = wanted || names[0];
  modelChanged(false);
}

function currentModel() { return $('model-select').value; }

function modelChanged(byUser) {
  const name = currentModel();
  if (!name) return;
  if (byUser && state.conv) state.conv.model = name;
  state.settings.model = name;
  store.saveSettings(state.settings);
}

// ---------------------------------------------------------------------------
// Conversations

function titleOf(text) {
  const t = text.replace(/\s+/g, ' ').trim();
  return t.length > 60 ? t.slice(0, 57) + '…' : t || 'New chat';
}

function persist(conv) {
  try {
    const dropped = store.saveConversation(conv);
    if (dropped > 0) showNotice(`The browser's storage was full: the ${dropped} oldest conversation(s) were deleted.`, 'info');
  } catch (e) {
    showNotice('Could not save the conversation in the browser: ' + e.message);
  }
}

function openConversation(conv) {
  state.conv = conv;
  fillSettingsForm(conv);
  const names = state.models.map((m) => m.name);
  if (conv.model && names.includes(conv.model)) $('model-select').value = conv.model;
  renderMessages();
  renderStats();
  renderSidebar();
  closeDrawer();
}

function startNewChat() {
  openConversation(store.newConversation({ ...state.settings, model: currentModel() || state.settings.model }));
  $('prompt').focus();
}

function renderSidebar() {
  const list = $('conversation-list');
  list.replaceChildren();
  const entries = store.listConversations();
  if (state.conv && state.conv.messages.length === 0) entries.unshift({ id: state.conv.id, title: 'New chat', model: state.conv.model });
  for (const entry of entries) {
    const li = el('li', 'conversation' + (state.conv && entry.id === state.conv.id ? ' active' : ''));
    li.dataset.id = entry.id;
    const open = el('button', 'conversation-open');
    open.type = 'button';
    open.appendChild(el('span', 'conversation-title', entry.title || 'New chat'));
    open.appendChild(el('span', 'conversation-model', displayName(entry.model || '')));
    if (state.running && state.running.conv.id === entry.id) open.appendChild(el('span', 'running-dot', '●'));
    open.addEventListener('click', () => {
      if (state.conv && entry.id === state.conv.id) return closeDrawer();
      const running = state.running && state.running.conv.id === entry.id ? state.running.conv : null;
      const conv = running || store.loadConversation(entry.id);
      if (conv) openConversation(conv);
      else showNotice('That conversation could not be read back from the browser storage.');
    });
    const del = el('button', 'mini-button delete-button');
    del.type = 'button';
    del.title = 'Delete';
    del.setAttribute('aria-label', 'Delete conversation');
    del.appendChild(icon(ICON_TRASH));
    del.addEventListener('click', () => {
      // Two clicks, no modal dialog: the first arms it.
      if (!del.classList.contains('armed')) {
        del.classList.add('armed');
        del.title = 'Click again to delete';
        setTimeout(() => { del.classList.remove('armed'); del.title = 'Delete'; }, 3000);
        return;
      }
      if (state.running && state.running.conv.id === entry.id) state.running.controller.abort();
      store.deleteConversation(entry.id);
      if (state.conv && state.conv.id === entry.id) startNewChat();
      else renderSidebar();
    });
    li.appendChild(open);
    li.appendChild(del);
    list.appendChild(li);
  }
}

// ---------------------------------------------------------------------------
// Messages

// "<think>…</think>" at the start of a reply, when the server did not split
// it into message.thinking.
function splitThinking(msg) {
  let thinking = msg.thinking || '';
  let content = msg.content;
  const m = /^\s*<think>([\s\S]*?)(<\/think>|$)/.exec(content);
  if (m) {
    thinking += m[1];
    content = content.slice(m[0].length);
  }
  return { thinking: thinking.trim(), content };
}

function figuresText(st) {
  const parts = [];
  if (st.eval_count != null) parts.push(`${st.eval_count} tokens`);
  if (st.tps != null) parts.push(`${st.tps.toFixed(1)} tok/s`);
  if (st.prompt_eval_count != null) {
    let p = `prompt ${st.prompt_eval_count} new`;
    if (st.cached_tokens != null && st.cached_tokens > 0) p += ` + ${st.cached_tokens} cached`;
    if (st.prompt_eval_duration != null) p += ` in ${(st.prompt_eval_duration / 1e6).toFixed(0)} ms`;
    parts.push(p);
  }
  if (st.state_bytes != null) parts.push(`state ${formatBytes(st.state_bytes)}`);
  if (st.rss != null) parts.push(`RSS ${formatBytes(st.rss)}`);
  if (st.done_reason === 'length') parts.push('cut at the length limit');
  return parts.join(' · ');
}

function canvasView(msg) {
  const box = el('div', 'canvas');
  box.dataset.step = String(msg.canvasStep ?? '');
  const label = msg.canvasSteps ? `refining: step ${msg.canvasStep ?? '?'} of ${msg.canvasSteps}` : 'refining';
  box.appendChild(el('div', 'canvas-label', label));
  box.appendChild(el('pre', 'canvas-text', msg.canvas));
  return box;
}

function fillBody(body, msg) {
  body.replaceChildren();
  if (msg.role === 'user') {
    body.appendChild(el('div', 'plain', msg.content));
    return;
  }
  const { thinking, content } = splitThinking(msg);
  if (thinking) {
    const d = el('details', 'thinking');
    d.appendChild(el('summary', '', 'Thinking'));
    d.appendChild(el('div', 'plain', thinking));
    body.appendChild(d);
  }
  if (msg.canvas != null) body.appendChild(canvasView(msg));
  if (content) body.appendChild(renderMarkdown(content, { copyButton: (get) => copyButton(get, 'Copy code') }));
  else if (state.running && state.running.msg === msg && msg.canvas == null) body.appendChild(el('div', 'typing', '…'));
  if (msg.stopped) body.appendChild(el('div', 'stopped-note', 'stopped'));
  if (msg.error) body.appendChild(el('div', 'message-error', msg.error));
}

function messageFooter(msg, index, isLast) {
  const foot = el('div', 'message-foot');
  if (msg.role === 'assistant' && msg.stats) foot.appendChild(el('span', 'figures', figuresText(msg.stats)));
  const actions = el('span', 'actions');
  if (msg.content) actions.appendChild(copyButton(() => msg.content));
  if (msg.role === 'assistant' && isLast && !state.running) {
    const retry = el('button', 'mini-button retry-button');
    retry.type = 'button';
    retry.title = 'Regenerate (the server has the prompt cached: it costs no prompt tokens)';
    retry.appendChild(icon(ICON_RETRY));
    retry.appendChild(el('span', 'mini-label', 'regenerate'));
    retry.addEventListener('click', () => regenerate());
    actions.appendChild(retry);
  }
  foot.appendChild(actions);
  return foot;
}

function emptyState() {
  const box = el('div', 'empty');
  box.appendChild(el('h1', '', 'Chat with a local model'));
  box.appendChild(el('p', '', 'flatline keeps each conversation\'s state on the server, so a new turn only costs its new tokens. ' +
    'The figures beside the chat show it: tokens per second, prompt tokens processed, memory, turn after turn.'));
  if (state.models.length === 0) box.appendChild(el('p', 'hint', 'The server lists no models: put .gguf files in its models directory.'));
  return box;
}

function renderMessages() {
  const box = $('messages');
  box.replaceChildren();
  const conv = state.conv;
  const visible = conv.messages.map((m, i) => [m, i]).filter(([m]) => m.role !== 'system');
  if (visible.length === 0) box.appendChild(emptyState());
  let turn = 0;
  const lastAssistant = conv.messages.map((m) => m.role).lastIndexOf('assistant');
  for (const [msg, i] of visible) {
    const art = el('article', 'message ' + msg.role);
    art.dataset.role = msg.role;
    art.dataset.index = String(i);
    if (msg.role === 'assistant') art.dataset.turn = String(++turn);
    art.appendChild(el('div', 'message-role', msg.role === 'user' ? 'You' : displayName(conv.model || 'assistant')));
    const body = el('div', 'message-body');
    fillBody(body, msg);
    state.bodies.set(msg, body);
    art.appendChild(body);
    art.appendChild(messageFooter(msg, i, i === lastAssistant && i === conv.messages.length - 1));
    box.appendChild(art);
  }
  box.scrollTop = box.scrollHeight;
}

// Re-renders the streaming message at most once per frame.
function scheduleRender() {
  if (state.renderQueued) return;
  state.renderQueued = true;
  requestAnimationFrame(() => {
    state.renderQueued = false;
    const run = state.running;
    if (!run || run.conv !== state.conv) return;
    const body = state.bodies.get(run.msg);
    if (!body) return;
    const box = $('messages');
    const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 80;
    fillBody(body, run.msg);
    if (atBottom) box.scrollTop = box.scrollHeight;
  });
}

// ---------------------------------------------------------------------------
// Sending

function requestMessages(conv, upTo) {
  const out = [];
  if (conv.system.trim()) out.push({ role: 'system', content: conv.system });
  for (const m of conv.messages.slice(0, upTo)) {
    if (m.role === 'system') continue;
    if (m.role === 'assistant' && (m.error || !m.content)) continue;  // a failed reply is not history
    out.push({ role: m.role, content: m.content });
  }
  return out;
}

function setRunning(running) {
  $('send').hidden = running;
  $('stop').hidden = !running;
  $('layout').classList.toggle('generating', running);
}

// After the last line of a reply: the figures of the turn. /flatline/stats
// adds resident memory and the state size; its last_turn is this one when
// the counts match (another client may have used the server in between).
async function turnStats(model, final) {
  const st = {
    eval_count: final.eval_count, eval_duration: final.eval_duration,
    prompt_eval_count: final.prompt_eval_count, prompt_eval_duration: final.prompt_eval_duration,
    total_duration: final.total_duration, load_duration: final.load_duration,
    done_reason: final.done_reason,
  };
  if (final.eval_duration > 0) st.tps = final.eval_count / (final.eval_duration / 1e9);
  try {
    const s = await api('/flatline/stats');
    st.rss = s.resident_memory_bytes;
    const t = s.last_turn;
    if (t && t.model === model && t.eval_count === final.eval_count && t.prompt_eval_count === final.prompt_eval_count) {
      st.rss = t.resident_memory_bytes;
      st.state_bytes = t.state_bytes;
      st.prompt_tokens = t.prompt_tokens;
      st.cached_tokens = t.cached_tokens;
    }
  } catch { /* a server without the route: the reply's own figures only */ }
  for (const k of Object.keys(st)) if (st[k] === undefined || st[k] === null) delete st[k];
  return st;
}

// diffusion_canvas asks a diffusion model to stream its canvas after every
// refinement step (lines with `canvas`, `step`, `steps`); other models
// ignore it, so it is always sent.
function requestOptions(conv) {
  return { ...conv.options, diffusion_canvas: true };
}

function canvasOf(line) {
  const c = line.canvas;
  if (typeof c === 'string') return { text: c, step: line.step, steps: line.steps };
  if (c && typeof c === 'object') {
    const text = typeof c.text === 'string' ? c.text : Array.isArray(c.tokens) ? c.tokens.join('') : JSON.stringify(c);
    return { text, step: c.step ?? line.step, steps: c.steps ?? line.steps };
  }
  return null;
}

async function generate(conv, msg) {
  const controller = new AbortController();
  state.running = { conv, msg, controller };
  setRunning(true);
  if (state.conv === conv) renderMessages();  // no regenerate button while it runs
  renderSidebar();
  const index = conv.messages.indexOf(msg);
  const body = { model: conv.model, messages: requestMessages(conv, index), stream: true, options: requestOptions(conv) };
  try {
    const res = await fetch('/api/chat', { method: 'POST', headers: headers(true), body: JSON.stringify(body), signal: controller.signal });
    if (!res.ok) throw await errorOf(res);
    let final = null;
    await readNdjson(res, (line) => {
      if (line.error) throw new ApiError(500, typeof line.error === 'string' ? line.error : JSON.stringify(line.error));
      if (line.canvas !== undefined) {
        const c = canvasOf(line);
        if (c) { msg.canvas = c.text; msg.canvasStep = c.step; msg.canvasSteps = c.steps; }
      }
      const m = line.message;
      if (m && typeof m.content === 'string') msg.content += m.content;
      if (m && typeof m.thinking === 'string') msg.thinking = (msg.thinking || '') + m.thinking;
      if (line.done) final = line;
      scheduleRender();
    });
    if (final) msg.stats = await turnStats(conv.model, final);
    else msg.error = 'The reply ended without its last line (did the server stop?).';
    hideNotice();
  } catch (e) {
    if (e.name === 'AbortError') msg.stopped = true;
    else msg.error = e instanceof TypeError ? 'Cannot reach the server: ' + e.message : e.message || String(e);
  } finally {
    delete msg.canvas;  // the canvas shows the refinement; the reply is its text
    delete msg.canvasStep;
    delete msg.canvasSteps;
    state.running = null;
    setRunning(false);
    persist(conv);
    if (state.conv === conv) {
      renderMessages();
      renderStats();
    }
    renderSidebar();
  }
}

function send() {
  const text = $('prompt').value;
  if (!text.trim() || state.running) return;
  const model = currentModel();
  if (!model) return showNotice('No model to talk to: the server lists none.');
  const conv = state.conv;
  conv.model = model;
  readSettingsForm();
  conv.messages.push({ role: 'user', content: text });
  if (!conv.title) conv.title = titleOf(text);
  const msg = { role: 'assistant', content: '' };
  conv.messages.push(msg);
  $('prompt').value = '';
  growPrompt();
  persist(conv);
  renderMessages();
  renderSidebar();
  generate(conv, msg);
}

function regenerate() {
  const conv = state.conv;
  if (state.running || conv.messages.length === 0 || conv.messages[conv.messages.length - 1].role !== 'assistant') return;
  conv.messages.pop();
  conv.model = currentModel() || conv.model;
  const msg = { role: 'assistant', content: '' };
  conv.messages.push(msg);
  renderMessages();
  generate(conv, msg);
}

function stop() {
  if (state.running) state.running.controller.abort();
}

// ---------------------------------------------------------------------------
// Per-turn figures

function renderStats() {
  $('layout').classList.toggle('stats-hidden', !state.settings.showStats);
  $('toggle-stats').setAttribute('aria-pressed', String(state.settings.showStats));
  const turns = state.conv.messages.filter((m) => m.role === 'assistant' && !m.error);
  const st = turns.map((m) => m.stats || null);
  const charts = $('charts');
  charts.replaceChildren();
  const table = $('stats-table');
  table.replaceChildren();
  if (!st.some(Boolean)) {
    charts.appendChild(el('p', 'hint', 'The figures of each turn appear here after the first reply.'));
    return;
  }
  const get = (k) => st.map((s) => (s && s[k] != null ? s[k] : null));
  charts.appendChild(lineChart({
    title: 'Speed and prompt work',
    xLabel: 'turn',
    axes: { left: { label: 'tokens/s' }, right: { label: 'prompt tokens' } },
    series: [
      { name: 'tokens/s', axis: 'left', values: get('tps'), cls: 's1', format: (v) => v.toFixed(1) + ' tok/s' },
      { name: 'prompt tokens processed', axis: 'right', values: get('prompt_eval_count'), cls: 's2', format: (v) => v + ' tokens' },
    ],
  }));
  const stateValues = get('state_bytes');
  const bigState = Math.max(0, ...stateValues.filter((v) => v != null)) >= 10 * 1048576;
  charts.appendChild(lineChart({
    title: 'Memory',
    xLabel: 'turn',
    axes: { left: { label: 'server RSS (MiB)', scale: 1048576 }, right: { label: bigState ? 'state (MiB)' : 'state (KiB)', scale: bigState ? 1048576 : 1024 } },
    series: [
      { name: 'server resident memory', axis: 'left', values: get('rss'), cls: 's3', format: formatBytes },
      { name: 'conversation state', axis: 'right', values: stateValues, cls: 's4', format: formatBytes },
    ],
  }));

  const head = el('tr');
  for (const h of ['turn', 'tok/s', 'prompt', 'ms', 'RSS', 'state']) head.appendChild(el('th', '', h));
  const thead = el('thead');
  thead.appendChild(head);
  table.appendChild(thead);
  const tbody = el('tbody');
  st.forEach((s, i) => {
    const tr = el('tr');
    tr.dataset.turn = String(i + 1);
    const cells = [String(i + 1)];
    if (!s) {
      cells.push('stopped', '', '', '', '');
    } else {
      tr.dataset.promptEval = String(s.prompt_eval_count ?? '');
      tr.dataset.promptTokens = String(s.prompt_tokens ?? '');
      tr.dataset.cachedTokens = String(s.cached_tokens ?? '');
      tr.dataset.stateBytes = String(s.state_bytes ?? '');
      const prompt = s.prompt_tokens != null ? `${s.prompt_eval_count} of ${s.prompt_tokens}` : String(s.prompt_eval_count ?? '');
      cells.push(s.tps != null ? s.tps.toFixed(1) : '', prompt,
        s.prompt_eval_duration != null ? (s.prompt_eval_duration / 1e6).toFixed(0) : '',
        s.rss != null ? formatBytes(s.rss) : '', s.state_bytes != null ? formatBytes(s.state_bytes) : '');
    }
    for (const c of cells) tr.appendChild(el('td', '', c));
    tbody.appendChild(tr);
  });
  table.appendChild(tbody);
}

// ---------------------------------------------------------------------------
// Settings, theme, layout

function fillSettingsForm(conv) {
  $('system-prompt').value = conv.system;
  for (const k of store.OPTION_NAMES) $('opt-' + k).value = conv.options[k] ?? '';
  $('api-key').value = state.settings.apiKey;
  $('theme-select').value = state.settings.theme;
}

function readSettingsForm() {
  const conv = state.conv;
  conv.system = $('system-prompt').value;
  const options = {};
  for (const k of store.OPTION_NAMES) {
    const raw = $('opt-' + k).value.trim();
    if (raw === '') continue;
    const v = Number(raw);
    if (isFinite(v)) options[k] = k === 'top_k' || k === 'num_predict' || k === 'num_ctx' ? Math.trunc(v) : v;
  }
  conv.options = options;
  // This conversation's choices become the defaults for the next one.
  state.settings.system = conv.system;
  state.settings.options = { ...options };
  state.settings.apiKey = $('api-key').value.trim();
  store.saveSettings(state.settings);
  if (conv.messages.length) persist(conv);
}

function openSettings(open) {
  $('settings').hidden = !open;
  $('toggle-settings').setAttribute('aria-expanded', String(open));
}

function effectiveDark() {
  const t = state.settings.theme;
  return t === 'dark' || (t === 'auto' && matchMedia('(prefers-color-scheme: dark)').matches);
}

function applyTheme() {
  const t = state.settings.theme;
  if (t === 'auto') delete document.documentElement.dataset.theme;
  else document.documentElement.dataset.theme = t;
  $('theme-select').value = t;
}

function isNarrow() { return matchMedia('(max-width: 760px)').matches; }

// Phones: the conversations and the figures are drawers over the chat.
function closeDrawer() {
  $('layout').classList.remove('drawer-open', 'stats-open');
  $('scrim').hidden = true;
}

function toggleStats() {
  if (isNarrow()) {
    const open = !$('layout').classList.contains('stats-open');
    closeDrawer();
    $('layout').classList.toggle('stats-open', open);
    $('scrim').hidden = !open;
    return;
  }
  state.settings.showStats = !state.settings.showStats;
  store.saveSettings(state.settings);
  renderStats();
}

function toggleSidebar() {
  const layout = $('layout');
  if (isNarrow()) {
    const open = !layout.classList.contains('drawer-open');
    closeDrawer();
    layout.classList.toggle('drawer-open', open);
    $('scrim').hidden = !open;
  } else {
    layout.classList.toggle('sidebar-collapsed');
  }
}

function growPrompt() {
  const p = $('prompt');
  p.style.height = 'auto';
  p.style.height = Math.min(p.scrollHeight, 220) + 'px';
}

async function showServerVersion() {
  try {
    const v = await api('/api/version');
    $('server-info').textContent = `flatline ${v.flatline_version || ''} · Ollama API ${v.version || ''}`;
  } catch {
    $('server-info').textContent = 'server unreachable';
  }
}

function wire() {
  $('composer').addEventListener('submit', (e) => { e.preventDefault(); send(); });
  $('prompt').addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      send();
    }
  });
  $('prompt').addEventListener('input', growPrompt);
  $('stop').addEventListener('click', stop);
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.running) { e.preventDefault(); stop(); }
    if (e.key.toLowerCase() === 'o' && e.shiftKey && (e.ctrlKey || e.metaKey)) { e.preventDefault(); startNewChat(); }
  });
  $('new-chat').addEventListener('click', startNewChat);
  $('model-select').addEventListener('change', () => modelChanged(true));
  $('toggle-settings').addEventListener('click', () => openSettings($('settings').hidden));
  $('settings').addEventListener('input', readSettingsForm);
  $('settings').addEventListener('submit', (e) => e.preventDefault());
  $('theme-select').addEventListener('change', () => {
    state.settings.theme = $('theme-select').value;
    store.saveSettings(state.settings);
    applyTheme();
  });
  $('toggle-theme').addEventListener('click', () => {
    state.settings.theme = effectiveDark() ? 'light' : 'dark';
    store.saveSettings(state.settings);
    applyTheme();
  });
  $('toggle-stats').addEventListener('click', toggleStats);
  $('toggle-sidebar').addEventListener('click', toggleSidebar);
  $('scrim').addEventListener('click', closeDrawer);
  // Another tab changed the stored conversations: refresh the list.
  window.addEventListener('storage', () => renderSidebar());
}

function init() {
  applyTheme();
  wire();
  const latest = store.listConversations()[0];
  const conv = (latest && store.loadConversation(latest.id)) || store.newConversation(state.settings);
  openConversation(conv);
  loadModels().then(() => { if (state.conv.messages.length === 0) renderMessages(); });
  showServerVersion();
  $('prompt').focus();
}

init();
