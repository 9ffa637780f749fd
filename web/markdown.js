// Markdown to DOM nodes, for model output. Everything the model wrote ends
// up in text nodes (textContent / createTextNode); no string is ever parsed
// as HTML, so `<script>` or `<img onerror=...>` in a reply shows as text.
// Links are made only for http(s) and mailto addresses.
//
// Blocks: paragraphs (single newlines kept as line breaks), ATX headings,
// fenced code (``` or ~~~, with a language label and a copy button; an
// unclosed fence while streaming runs to the end), block quotes, bullet and
// numbered lists (nested by indentation), tables, horizontal rules.
// Inline: `code`, **bold**, __bold__, *italic*, _italic_, ~~strike~~,
// [text](url), bare http(s) URLs.

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:\s+(.*?))?\s*#*\s*$/;
const RULE = /^ {0,3}([-*_])(?:\s*\1){2,}\s*$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const LIST_ITEM = /^(\s*)([-*+]|\d{1,9}[.)])\s+(.*)$/;
const TABLE_DIVIDER = /^\s*\|?\s*:?-{1,}:?\s*(\|\s*:?-{1,}:?\s*)*\|?\s*$/;

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

// The address a link may point at, or null (javascript:, data:, relative
// paths and anything else are not followed).
export function safeHref(url) {
  const u = String(url).trim();
  if (/^(https?:\/\/|mailto:)/i.test(u) && !/[\s<>"]/.test(u)) return u;
  return null;
}

function link(text, href, parent) {
  const safe = safeHref(href);
  if (!safe) {
    parent.appendChild(document.createTextNode(text));
    return;
  }
  const a = el('a');
  a.href = safe;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  renderInline(text, a);
  parent.appendChild(a);
}

// Inline spans, left to right; the earliest match wins, the rest of the text
// is searched again after it.
const INLINE = new RegExp([
  /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/.source,            // 1,2 code span
  /\*\*(?=\S)([\s\S]*?\S)\*\*/.source,                       // 3 bold
  /__(?=\S)([\s\S]*?\S)__(?!\w)/.source,                     // 4 bold
  /~~(?=\S)([\s\S]*?\S)~~/.source,                           // 5 strike
  /\*(?=[^\s*])([\s\S]*?[^\s*])\*(?!\*)/.source,             // 6 italic
  /(?<![\w\\])_(?=[^\s_])([\s\S]*?[^\s_])_(?!\w)/.source,    // 7 italic
  /\[([^\]\n]+)\]\(\s*<?([^)\s>]+)>?(?:\s+"[^"\n]*")?\s*\)/.source,  // 8,9 link
  /(https?:\/\/[^\s<>()[\]]*[^\s<>()[\].,;:!?'"*_~])/.source,  // 10 bare URL
  /(\n)/.source,                                              // 11 line break
].join('|'), 'g');

export function renderInline(text, parent) {
  // Its own copy of the pattern: a 'g' regex keeps its position in
  // lastIndex, and the recursive calls for **bold** etc. would reset a
  // shared one under the outer loop (which then never ends).
  const inline = new RegExp(INLINE.source, 'g');
  let last = 0;
  for (let m; (m = inline.exec(text)) !== null;) {
    if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
    last = inline.lastIndex;
    if (m[2] !== undefined) {
      const code = m[2].length > 2 && m[2].startsWith(' ') && m[2].endsWith(' ') ? m[2].slice(1, -1) : m[2];
      parent.appendChild(el('code', 'inline-code', code));
    } else if (m[3] !== undefined || m[4] !== undefined) {
      const strong = el('strong');
      renderInline(m[3] ?? m[4], strong);
      parent.appendChild(strong);
    } else if (m[5] !== undefined) {
      const del = el('del');
      renderInline(m[5], del);
      parent.appendChild(del);
    } else if (m[6] !== undefined || m[7] !== undefined) {
      const em = el('em');
      renderInline(m[6] ?? m[7], em);
      parent.appendChild(em);
    } else if (m[8] !== undefined) {
      link(m[8], m[9], parent);
    } else if (m[10] !== undefined) {
      link(m[10], m[10], parent);
    } else if (m[11] !== undefined) {
      parent.appendChild(el('br'));
    }
    if (m[0].length === 0) inline.lastIndex++;  // never loop on an empty match
  }
  if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
}

// A code block with its language and a copy button. `copy` is called with the
// button and the text (the page decides how to copy).
function codeBlock(code, lang, options) {
  const wrap = el('div', 'code-block');
  const head = el('div', 'code-head');
  head.appendChild(el('span', 'code-lang', lang || 'text'));
  if (options.copyButton) head.appendChild(options.copyButton(() => code));
  const pre = el('pre');
  const c = el('code', lang ? 'language-' + lang.replace(/[^\w+#.-]/g, '') : '', code);
  pre.appendChild(c);
  wrap.appendChild(head);
  wrap.appendChild(pre);
  return wrap;
}

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') { cur += '|'; i++; continue; }
    if (s[i] === '|') { cells.push(cur.trim()); cur = ''; continue; }
    cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function table(lines, options) {
  const header = splitRow(lines[0]);
  const aligns = splitRow(lines[1]).map((c) => (c.endsWith(':') ? (c.startsWith(':') ? 'center' : 'right') : c.startsWith(':') ? 'left' : ''));
  const wrap = el('div', 'table-wrap');
  const t = el('table');
  const thead = el('thead');
  const tr = el('tr');
  header.forEach((cell, i) => {
    const th = el('th');
    if (aligns[i]) th.classList.add('align-' + aligns[i]);
    renderInline(cell, th);
    tr.appendChild(th);
  });
  thead.appendChild(tr);
  t.appendChild(thead);
  const tbody = el('tbody');
  for (const line of lines.slice(2)) {
    const row = el('tr');
    const cells = splitRow(line);
    for (let i = 0; i < header.length; i++) {
      const td = el('td');
      if (aligns[i]) td.classList.add('align-' + aligns[i]);
      renderInline(cells[i] ?? '', td);
      row.appendChild(td);
    }
    tbody.appendChild(row);
  }
  t.appendChild(tbody);
  wrap.appendChild(t);
  return wrap;
}

function isBlockStart(line, next) {
  return FENCE.test(line) || HEADING.test(line) || RULE.test(line) || QUOTE.test(line) || LIST_ITEM.test(line) ||
    (line.includes('|') && next !== undefined && TABLE_DIVIDER.test(next) && next.includes('-'));
}

function indentOf(line) {
  const m = /^\s*/.exec(line);
  return m[0].replace(/\t/g, '    ').length;
}

// Consecutive items of one list (same kind, same indentation); lines
// indented deeper, and lines continuing an item, belong to the item above.
function list(lines, start, options, depth) {
  const first = LIST_ITEM.exec(lines[start]);
  const base = indentOf(lines[start]);
  const ordered = /\d/.test(first[2]);
  const node = el(ordered ? 'ol' : 'ul');
  if (ordered) {
    const n = parseInt(first[2], 10);
    if (n !== 1) node.start = n;
  }
  let i = start;
  while (i < lines.length) {
    const m = LIST_ITEM.exec(lines[i]);
    if (!m || indentOf(lines[i]) !== base || /\d/.test(m[2]) !== ordered) break;
    const body = [m[3]];
    i++;
    while (i < lines.length) {
      const line = lines[i];
      if (line.trim() === '') {
        // A blank line ends the list unless the next line continues it.
        const next = lines[i + 1];
        if (next !== undefined && (indentOf(next) > base || (LIST_ITEM.test(next) && indentOf(next) === base))) {
          if (indentOf(next) > base) body.push('');
          i++;
          continue;
        }
        break;
      }
      if (indentOf(line) > base) { body.push(line.slice(Math.min(indentOf(line), base + 2))); i++; continue; }
      if (LIST_ITEM.test(line) || isBlockStart(line, lines[i + 1])) break;
      body.push(line.trim());  // a lazy continuation line
      i++;
    }
    const li = el('li');
    if (body.length === 1 || !body.slice(1).some((l) => LIST_ITEM.test(l) || FENCE.test(l))) {
      renderInline(body.join('\n').trim(), li);
    } else {
      renderBlocks(body, li, options, depth + 1);
    }
    node.appendChild(li);
  }
  return { node, next: i };
}

function renderBlocks(lines, parent, options, depth) {
  if (depth > 12) {  // hostile nesting: the rest as plain text
    parent.appendChild(el('p', '', lines.join('\n')));
    return;
  }
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (line.trim() === '') { i++; continue; }
    let m;
    if ((m = FENCE.exec(line))) {
      const fence = m[1];
      const body = [];
      i++;
      while (i < lines.length) {
        const close = /^ {0,3}(`{3,}|~{3,})\s*$/.exec(lines[i]);
        if (close && close[1][0] === fence[0] && close[1].length >= fence.length) { i++; break; }
        body.push(lines[i]);
        i++;
      }
      parent.appendChild(codeBlock(body.join('\n'), m[2], options));
      continue;
    }
    if ((m = HEADING.exec(line))) {
      const h = el('h' + Math.min(6, m[1].length + 2));  // h3..h6: a reply's heading is not the page's
      renderInline(m[2] || '', h);
      parent.appendChild(h);
      i++;
      continue;
    }
    if (RULE.test(line)) { parent.appendChild(el('hr')); i++; continue; }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && (m = QUOTE.exec(lines[i]))) { body.push(m[1]); i++; }
      const q = el('blockquote');
      renderBlocks(body, q, options, depth + 1);
      parent.appendChild(q);
      continue;
    }
    if (LIST_ITEM.test(line)) {
      const { node, next } = list(lines, i, options, depth);
      parent.appendChild(node);
      i = next;
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_DIVIDER.test(lines[i + 1]) && lines[i + 1].includes('-')) {
      const rows = [line, lines[i + 1]];
      i += 2;
      while (i < lines.length && lines[i].includes('|') && lines[i].trim() !== '') { rows.push(lines[i]); i++; }
      parent.appendChild(table(rows, options));
      continue;
    }
    const para = [line];
    i++;
    while (i < lines.length && lines[i].trim() !== '' && !isBlockStart(lines[i], lines[i + 1])) { para.push(lines[i]); i++; }
    const p = el('p');
    renderInline(para.join('\n'), p);
    parent.appendChild(p);
  }
}

// Renders `text` into a new <div class="markdown">. options.copyButton(getText)
// returns a button for code blocks (or is absent).
export function renderMarkdown(text, options = {}) {
  const root = el('div', 'markdown');
  renderBlocks(String(text).replace(/\r\n?/g, '\n').split('\n'), root, options, 0);
  return root;
}
