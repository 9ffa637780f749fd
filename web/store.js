// Conversations and settings, kept in the browser (localStorage): one key
// per conversation plus an index, so a long history does not rewrite every
// other conversation on each turn. Whatever is read back is checked and
// coerced: a broken or hand-edited entry is skipped, never trusted.

const INDEX_KEY = 'flatline.index.v1';
const CONVERSATION_PREFIX = 'flatline.conversation.v1.';
const SETTINGS_KEY = 'flatline.settings.v1';

export const OPTION_NAMES = ['temperature', 'top_p', 'top_k', 'num_predict', 'num_ctx'];

function read(key) {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

function isQuotaError(e) {
  return e instanceof DOMException && (e.name === 'QuotaExceededError' || e.code === 22);
}

export function loadSettings() {
  const s = read(SETTINGS_KEY) || {};
  return {
    theme: ['light', 'dark', 'auto'].includes(s.theme) ? s.theme : 'auto',
    apiKey: typeof s.apiKey === 'string' ? s.apiKey : '',
    model: typeof s.model === 'string' ? s.model : '',
    showStats: s.showStats !== false,
    system: typeof s.system === 'string' ? s.system : '',
    options: cleanOptions(s.options),
  };
}

export function saveSettings(settings) {
  try {
    localStorage.setItem(SETTINGS_KEY, JSON.stringify(settings));
  } catch { /* settings are a convenience: a full storage must not break the page */ }
}

// Only the known numeric options, as numbers.
export function cleanOptions(options) {
  const out = {};
  if (options && typeof options === 'object')
    for (const k of OPTION_NAMES) if (typeof options[k] === 'number' && isFinite(options[k])) out[k] = options[k];
  return out;
}

function cleanMessage(m) {
  if (!m || typeof m !== 'object' || typeof m.content !== 'string') return null;
  if (!['user', 'assistant', 'system'].includes(m.role)) return null;
  const out = { role: m.role, content: m.content };
  if (typeof m.thinking === 'string' && m.thinking) out.thinking = m.thinking;
  if (m.stopped === true) out.stopped = true;
  if (typeof m.error === 'string') out.error = m.error;
  if (m.stats && typeof m.stats === 'object') {
    const st = {};
    for (const [k, v] of Object.entries(m.stats)) if (typeof v === 'number' && isFinite(v)) st[k] = v;
    if (typeof m.stats.done_reason === 'string') st.done_reason = m.stats.done_reason;
    out.stats = st;
  }
  return out;
}

function cleanConversation(c) {
  if (!c || typeof c !== 'object' || typeof c.id !== 'string' || !Array.isArray(c.messages)) return null;
  return {
    id: c.id,
    title: typeof c.title === 'string' ? c.title : '',
    model: typeof c.model === 'string' ? c.model : '',
    system: typeof c.system === 'string' ? c.system : '',
    options: cleanOptions(c.options),
    messages: c.messages.map(cleanMessage).filter(Boolean),
    created: Number(c.created) || Date.now(),
    updated: Number(c.updated) || Date.now(),
  };
}

export function newConversation(settings) {
  const id = (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random().toString(16).slice(2));
  return {
    id, title: '', model: settings.model, system: settings.system, options: { ...settings.options },
    messages: [], created: Date.now(), updated: Date.now(),
  };
}

// Newest first: [{id, title, model, updated}].
export function listConversations() {
  const index = read(INDEX_KEY);
  if (!Array.isArray(index)) return [];
  return index
    .filter((e) => e && typeof e.id === 'string')
    .map((e) => ({ id: e.id, title: String(e.title || ''), model: String(e.model || ''), updated: Number(e.updated) || 0 }))
    .sort((a, b) => b.updated - a.updated);
}

export function loadConversation(id) {
  return cleanConversation(read(CONVERSATION_PREFIX + id));
}

function writeIndex(entries) {
  localStorage.setItem(INDEX_KEY, JSON.stringify(entries));
}

// Saves `conv` (not while it is empty). When the browser's storage is full,
// the oldest other conversations are dropped until it fits; returns the
// number dropped (the page says so).
export function saveConversation(conv) {
  if (conv.messages.length === 0) return 0;
  conv.updated = Date.now();
  const entry = { id: conv.id, title: conv.title, model: conv.model, updated: conv.updated };
  let dropped = 0;
  for (;;) {
    const index = listConversations().filter((e) => e.id !== conv.id);
    try {
      localStorage.setItem(CONVERSATION_PREFIX + conv.id, JSON.stringify(conv));
      writeIndex([entry, ...index]);
      return dropped;
    } catch (e) {
      if (!isQuotaError(e) || index.length === 0) throw e;
      const oldest = index[index.length - 1];
      localStorage.removeItem(CONVERSATION_PREFIX + oldest.id);
      writeIndex(index.slice(0, -1));
      dropped++;
    }
  }
}

export function deleteConversation(id) {
  localStorage.removeItem(CONVERSATION_PREFIX + id);
  writeIndex(listConversations().filter((e) => e.id !== id));
}
