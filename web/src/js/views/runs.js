// The runs of a project, newest first, refreshed every 5 s.
import {el, replace, replaceKeepingScroll, table} from '../dom.js';
import {formatAge, formatCost, formatDateTime, formatDuration, formatGpuRequest,
        parseTime} from '../format.js';
import {RUN_STATUSES, statusMessage, statusReason} from '../status.js';
import {poll} from '../poll.js';
import {badge, errorBanner, freshness, link, pageHead} from './common.js';

const REFRESH_MS = 5000;
const ACTIVE = ['pending', 'submitted', 'provisioning', 'running', 'terminating'];
let lastFilter = '';  // kept while the page is open

export function runDuration(run, nowMs) {
  const start = parseTime(run.submitted_at);
  const end = run.finished_at ? parseTime(run.finished_at) : nowMs;
  return (end - start) / 1000;
}

// The status label and, under it, why ("exit 3", "waiting: 0 of 1 CPUs free on local").
function statusCell(run) {
  const reason = statusReason(run);
  return el('div', {class: 'status-cell'}, badge(run.status),
            reason ? el('div', {class: 'reason muted small', 'data-test': 'status-reason',
                                title: statusMessage(run)}, reason)
                   : null);
}

export function mountRuns(main, ctx) {
  const filter = el('select', {class: 'select', 'aria-label': 'Filter by status',
                               'data-test': 'status-filter'},
    el('option', {value: ''}, 'All statuses'),
    el('option', {value: 'active'}, 'Active'),
    RUN_STATUSES.map((s) => el('option', {value: s}, s)));
  filter.value = lastFilter;
  const errors = errorBanner(ctx);
  const updated = freshness('refreshes every 5 s');
  const body = el('div', {class: 'card'}, el('div', {class: 'loading'}, 'Loading runs…'));
  replace(main, pageHead('Runs', updated.node, filter), errors.node, body);
  document.title = `Runs · ${ctx.project} · fleetwatch`;

  let generation = 0;
  let loaded = false;
  const load = async () => {
    const mine = ++generation;
    const value = filter.value;
    const statuses = value === 'active' ? ACTIVE : value ? [value] : [];
    try {
      const runs = await ctx.api.runs(ctx.project, {statuses});
      if (mine !== generation) return;
      errors.clear();
      render(runs, value);
      updated.mark();
      loaded = true;
    } catch (e) {
      if (mine !== generation) return;
      errors.show(e, 'Could not load the runs. ');
      body.hidden = !loaded;  // no "Loading…" under an error; older rows stay
      return;
    }
    body.hidden = false;
  };

  const render = (runs, value) => {
    if (runs.length === 0) {
      replace(body, el('div', {class: 'empty'},
        el('h2', null, value ? 'No runs with this status' : 'No runs yet'),
        value ? el('p', {class: 'muted'}, 'Choose another status to see more runs.')
              : el('p', {class: 'muted'}, 'Submit one with ',
                   el('code', null, 'fleetwatch apply -f run.yml'), ' or ',
                   el('code', null, 'fleetwatch run -- COMMAND'), '.')));
      return;
    }
    const now = Date.now();
    const columns = [
      {label: 'Name'}, {label: 'User', className: 'hide-narrow'},
      {label: 'Type', className: 'hide-narrow'},
      {label: 'Status', className: 'wrap'}, {label: 'GPUs'}, {label: 'Cost', className: 'num'},
      {label: 'Submitted'}, {label: 'Duration', className: 'num'},
    ];
    const rows = runs.map((run) => ({
      attrs: {'data-run': run.run_name},
      cells: [
        link(ctx.href('runs', run.run_name), run.run_name, {class: 'strong'}),
        run.user_name,
        run.run_type,
        statusCell(run),
        formatGpuRequest(run),
        formatCost(run.cost),
        el('span', {title: formatDateTime(parseTime(run.submitted_at))},
           formatAge(parseTime(run.submitted_at), now)),
        formatDuration(runDuration(run, now)),
      ],
    }));
    replaceKeepingScroll(body,
                         table(columns, rows, {class: 'data-table', 'data-test': 'runs-table'}));
  };

  let poller = poll(load, REFRESH_MS);
  filter.addEventListener('change', () => {
    lastFilter = filter.value;
    poller.stop();
    poller = poll(load, REFRESH_MS);
  });
  return {destroy: () => poller.stop()};
}
