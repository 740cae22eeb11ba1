// Building DOM nodes. Every piece of data becomes a text node: nothing here parses markup, so a
// name like `<img src=x onerror=alert(1)>` is shown as those characters.

// el('td', {class: 'num', title: 'x'}, 'text', otherNode, [more, nodes], null)
// Attributes are set with setAttribute (values are plain strings, never markup); `on*` keys
// attach listeners. Children: strings and numbers become text nodes, null/undefined/false are
// skipped, arrays are flattened.
export function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      node.addEventListener(key.slice(2), value);
    } else if (value === true) {
      node.setAttribute(key, '');
    } else {
      node.setAttribute(key, String(value));
    }
  }
  append(node, children);
  return node;
}

export function append(node, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) {
      append(node, child);
    } else if (child instanceof Node) {
      node.appendChild(child);
    } else {
      node.appendChild(document.createTextNode(String(child)));
    }
  }
  return node;
}

// Replaces all children of `node`.
export function replace(node, ...children) {
  node.replaceChildren();
  return append(node, children);
}

// Like replace(), but tables inside `node` keep how far they were scrolled sideways: views
// redraw their tables at every refresh, and a phone's reader must not be thrown back to the first
// column each time. The n-th table of the new content gets the n-th old table's offset.
export function replaceKeepingScroll(node, ...children) {
  const offsets = [...node.querySelectorAll('.table-wrap')].map((w) => w.scrollLeft);
  replace(node, ...children);
  node.querySelectorAll('.table-wrap').forEach((wrap, i) => {
    if (offsets[i] > 0) wrap.scrollLeft = offsets[i];
  });
  return node;
}

// Marks on `frame` which sides of the scrolling `wrap` hide columns: classes more-left and
// more-right, drawn as shadows at those edges (app.css).
function markHiddenColumns(frame, wrap) {
  const hidden = wrap.scrollWidth - wrap.clientWidth;
  frame.classList.toggle('more-left', hidden > 1 && wrap.scrollLeft > 1);
  frame.classList.toggle('more-right', hidden > 1 && wrap.scrollLeft < hidden - 1);
}

// A table inside a horizontally scrolling wrapper, so a narrow window scrolls the table and not
// the page; its frame shows a shadow at each edge with more columns beyond it. `columns`:
// [{label, className}]; `rows`: arrays of cells (nodes or text), or {cells, attrs} objects.
export function table(columns, rows, attrs = {}) {
  const head = el('thead', null,
    el('tr', null, columns.map((c) => el('th', {class: c.className, scope: 'col'}, c.label))));
  const body = el('tbody', null, rows.map((row) => {
    const cells = Array.isArray(row) ? row : row.cells;
    return el('tr', Array.isArray(row) ? null : row.attrs,
      cells.map((cell, i) => el('td', {class: columns[i].className}, cell)));
  }));
  const tableNode = el('table', attrs, head, body);
  const wrap = el('div', {class: 'table-wrap'}, tableNode);
  const frame = el('div', {class: 'table-frame'}, wrap);
  const mark = () => markHiddenColumns(frame, wrap);
  wrap.addEventListener('scroll', mark, {passive: true});
  // Fires once the table is on the page, then at every change of its width or its window's.
  const observer = new ResizeObserver(mark);
  observer.observe(wrap);
  observer.observe(tableNode);
  return frame;
}
