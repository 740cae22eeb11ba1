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

// A table inside a horizontally scrolling wrapper, so a narrow window scrolls the table and not
// the page. `columns`: [{label, className}]; `rows`: arrays of cells (nodes or text), or
// {cells, className} objects.
export function table(columns, rows, attrs = {}) {
  const head = el('thead', null,
    el('tr', null, columns.map((c) => el('th', {class: c.className, scope: 'col'}, c.label))));
  const body = el('tbody', null, rows.map((row) => {
    const cells = Array.isArray(row) ? row : row.cells;
    return el('tr', Array.isArray(row) ? null : row.attrs,
      cells.map((cell, i) => el('td', {class: columns[i].className}, cell)));
  }));
  return el('div', {class: 'table-wrap'}, el('table', attrs, head, body));
}
