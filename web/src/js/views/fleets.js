// The project's fleets and their instances, refreshed every 10 s. Unreachable instances stand
// out: a red row with an "unreachable" label. Each instance shows its GPU health and why.
import {el, replace, replaceKeepingScroll, table} from '../dom.js';
import {formatAge, formatBytes, formatDateTime, formatDuration, formatPrice, groupGpus,
        parseTime} from '../format.js';
import {poll} from '../poll.js';
import {badge, errorBanner, freshness, pageHead} from './common.js';

const REFRESH_MS = 10000;

// GPUs as lines "2 × NVIDIA A100 (80GB)"; the names are the hosts' words, shown as text.
function gpuCell(instance) {
  const groups = groupGpus(instance.resources && instance.resources.gpus);
  if (groups.length === 0) return el('span', {class: 'muted'}, 'none');
  return el('div', {class: 'gpu-list'}, groups.map((g) =>
    el('div', {class: 'gpu', 'data-test': 'gpu-name'},
       el('span', {class: 'gpu-count'}, `${g.count} ×`), ' ',
       el('span', {class: 'gpu-name'}, g.name || 'unnamed GPU'),
       g.memoryBytes ? el('span', {class: 'muted'}, ` (${formatBytes(g.memoryBytes)})`) : null)));
}

function hostCell(instance) {
  if (!instance.hostname) return '—';
  return instance.port ? `${instance.hostname}:${instance.port}` : instance.hostname;
}

// The status badges, then the GPU health below them.
function statusCell(instance) {
  return el('div', {class: 'status-cell'},
            el('span', {class: 'badges'}, badge(instance.status),
               instance.unreachable === true ? badge('unreachable', 'bad') : null),
            healthCell(instance));
}

// GPU health: a badge ("GPUs healthy", "GPUs degraded", "GPUs unhealthy") with the reason and
// the last XID below it, all as text; nothing while the server has no readings of the instance.
const HEALTH_TONES = {healthy: 'ok', degraded: 'wait', unhealthy: 'bad'};
function healthCell(instance) {
  const h = instance.health;
  if (!h || typeof h !== 'object') return null;
  const tone = HEALTH_TONES[h.status] || 'off';
  const text = `GPUs ${h.status || 'unknown'}`;
  return el('div', {class: 'health', 'data-test': 'health'},
    el('span', {class: `badge tone-${tone}`, 'data-status': h.status || 'unknown'}, text),
    h.reason ? el('div', {class: 'small reason', 'data-test': 'health-reason'}, h.reason) : null,
    h.last_event ? el('div', {class: 'muted small reason', title: h.last_event_at || ''},
                      `last: ${h.last_event}`) : null);
}

function resourcesCell(instance) {
  const r = instance.resources || {};
  if (!r.cpus && !r.memory_bytes) return el('span', {class: 'muted'}, 'not yet known');
  return `${r.cpus} CPU${r.cpus === 1 ? '' : 's'} · ${formatBytes(r.memory_bytes)}`;
}

function fleetCard(fleet, now) {
  const instances = fleet.instances || [];
  const columns = [
    {label: 'Instance'}, {label: 'Status', className: 'wrap'}, {label: 'Backend'}, {label: 'GPUs'},
    {label: 'CPU · memory', className: 'hide-narrow'}, {label: 'Price', className: 'num'},
    {label: 'Host'}, {label: 'Running for', className: 'num'},
  ];
  const rows = instances.map((i) => ({
    attrs: {'data-instance': i.name, class: i.unreachable === true ? 'unreachable' : null},
    cells: [
      el('span', {class: 'strong'}, i.name), statusCell(i), i.backend || '—', gpuCell(i),
      resourcesCell(i), formatPrice(i.price), hostCell(i),
      i.status === 'terminated' ? '—'
                                : formatDuration((now - parseTime(i.created_at)) / 1000),
    ],
  }));
  const unreachable = instances.filter((i) => i.unreachable === true).length;
  const created = parseTime(fleet.created_at);
  return el('section', {class: 'card fleet', 'data-fleet': fleet.name},
    el('div', {class: 'card-head'},
      el('h2', null, fleet.name), badge(fleet.status),
      el('span', {class: 'muted small'},
         `${instances.length} instance${instances.length === 1 ? '' : 's'} · created `,
         el('span', {title: formatDateTime(created)}, formatAge(created, now))),
      unreachable ? el('span', {class: 'badge tone-bad'}, `${unreachable} unreachable`) : null),
    instances.length ? table(columns, rows, {class: 'data-table', 'data-test': 'instances-table'})
                     : el('div', {class: 'empty'}, 'No instances yet.'));
}

export function mountFleets(main, ctx) {
  const errors = errorBanner(ctx);
  const updated = freshness('refreshes every 10 s');
  const body = el('div', {class: 'fleets'},
                  el('div', {class: 'card loading'}, 'Loading fleets…'));
  replace(main, pageHead('Fleets', updated.node), errors.node, body);
  document.title = `Fleets · ${ctx.project} · fleetwatch`;

  let loaded = false;
  const load = async () => {
    let fleets;
    try {
      fleets = await ctx.api.fleets(ctx.project);
    } catch (e) {
      errors.show(e, 'Could not load the fleets. ');
      body.hidden = !loaded;  // no "Loading…" under an error; older cards stay
      return;
    }
    loaded = true;
    body.hidden = false;
    errors.clear();
    updated.mark();
    const now = Date.now();
    if (fleets.length === 0) {
      replace(body, el('div', {class: 'card empty'}, el('h2', null, 'No fleets yet'),
        el('p', {class: 'muted'}, 'Add hosts that run ', el('code', null, 'fleetwatch agent'),
           ' with ', el('code', null, 'fleetwatch fleet apply -f fleet.yml'), '.')));
      return;
    }
    replaceKeepingScroll(body, fleets.map((f) => fleetCard(f, now)));
  };
  const poller = poll(load, REFRESH_MS);
  return {destroy: () => poller.stop()};
}
