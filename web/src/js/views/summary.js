// The run page's Summary: energy, carbon, cost, each job's CPU and memory, each GPU's use and
// the right-sizing notes, from the run-summary API. Refreshed with the run; once the run has
// finished, read once more (the server writes a job's summary at the tick after its end).
import {el, replace, replaceKeepingScroll, table} from '../dom.js';
import {summaryRows} from '../summary.js';

export function summarySection(ctx) {
  const body = el('div', {'data-test': 'summary'}, el('div', {class: 'muted'}, 'Loading…'));
  const state = el('span', {class: 'muted small'});
  const node = el('section', {class: 'card'},
                  el('div', {class: 'card-head'}, el('h2', null, 'Summary'), state), body);
  let shown = null;
  let inFlight = false;

  const render = (summary) => {
    const rows = summaryRows(summary);
    const key = JSON.stringify(rows);
    if (key === shown) return;
    shown = key;
    const parts = [
      el('div', {class: 'facts', 'data-test': 'summary-totals'},
         rows.totals.map(([label, value]) =>
           el('div', {class: 'fact'}, el('div', {class: 'fact-label'}, label),
              el('div', {class: 'fact-value'}, value)))),
    ];
    if (rows.jobs.length) {
      parts.push(table([
        {label: 'Job'}, {label: 'Status'}, {label: 'Duration', className: 'num'},
        {label: 'CPU mean / peak', className: 'num'}, {label: 'Memory peak', className: 'num'},
        {label: 'Energy', className: 'num'}, {label: 'Carbon', className: 'num'},
        {label: 'Cost', className: 'num'},
      ], rows.jobs, {class: 'data-table', 'data-test': 'summary-jobs'}));
    }
    if (rows.gpus.length) {
      parts.push(table([
        {label: 'Job'}, {label: 'GPU', className: 'num'},
        {label: 'Utilization mean / max', className: 'num'}, {label: 'Idle', className: 'num'},
        {label: 'Memory peak', className: 'num'}, {label: 'Energy', className: 'num'},
        {label: 'XID events', className: 'num'},
      ], rows.gpus, {class: 'data-table', 'data-test': 'summary-gpus'}));
    }
    if (rows.notes.length) {
      parts.push(el('h3', null, 'Notes'),
                 el('ul', {'data-test': 'summary-notes'},
                    rows.notes.map((n) => el('li', {'data-rule': n.rule}, `${n.job}: ${n.text}`))));
    }
    replaceKeepingScroll(body, ...parts);
  };

  return {
    node,
    async update(run) {
      if (inFlight) return;
      inFlight = true;
      try {
        render(await ctx.api.runSummary(ctx.project, run.run_name));
        state.textContent = '';
      } catch (e) {
        state.textContent = `Could not load the summary: ${e.message}`;
        if (shown === null) replace(body);
      } finally {
        inFlight = false;
      }
    },
  };
}
