// Pieces the views share.
import {ApiError} from '../api.js';
import {el} from '../dom.js';
import {formatClock} from '../format.js';
import {tone} from '../status.js';

// A coloured status label; `toneName` overrides the status's own colour (see status.js).
export function badge(status, toneName = tone(status)) {
  const text = status || 'unknown';
  return el('span', {class: `badge tone-${toneName}`, 'data-status': text},
            text.replace(/_/g, ' '));
}

// An error banner that stays hidden until show(error). A 401 signs the user out instead.
export function errorBanner(ctx) {
  const node = el('div', {class: 'banner error', role: 'alert', hidden: true,
                          'data-test': 'error'});
  return {
    node,
    show(error, prefix = '') {
      if (error instanceof ApiError && error.status === 401 && ctx.onUnauthenticated) {
        ctx.onUnauthenticated();
        return;
      }
      node.textContent = prefix + (error && error.message ? error.message : String(error));
      node.hidden = false;
    },
    clear() {
      node.hidden = true;
      node.textContent = '';
    },
  };
}

// "Updated 12:00:01 · refreshes every 5 s"
export function freshness(intervalText) {
  const node = el('span', {class: 'muted small freshness'});
  return {
    node,
    mark(ms = Date.now(), live = true) {
      node.textContent = `Updated ${formatClock(ms)}` + (live ? ` · ${intervalText}` : '');
    },
  };
}

export function pageHead(title, ...right) {
  return el('div', {class: 'page-head'}, el('h1', null, title),
            el('div', {class: 'page-actions'}, right));
}

// A link that looks like text in a table cell.
export function link(href, text, attrs = {}) {
  return el('a', {href, ...attrs}, text);
}

// A dash for absent values.
export function orDash(value) {
  return value === null || value === undefined || value === '' ? '—' : String(value);
}
