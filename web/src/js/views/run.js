// One run: its facts, its jobs and the selected job's log (Overview), or the selected job's
// CPU, memory and GPU charts (Metrics). Refreshes itself until the run has finished.
import {ChartCard} from '../charts.js';
import {el, replace, replaceKeepingScroll, table} from '../dom.js';
import {formatAge, formatBytes, formatCost, formatDateTime, formatDuration, formatGpuRequest,
        formatIdleShare, formatPercent, parseTime} from '../format.js';
import {chartData, latest} from '../metrics.js';
import {poll} from '../poll.js';
import {configurationText, hasMemoryLimit, requestedGpuCount, resourceRows} from '../resources.js';
import {isFinal, statusMessage, statusReason} from '../status.js';
import {badge, errorBanner, freshness, link, orDash} from './common.js';
import {runDuration} from './runs.js';
import {summarySection} from './summary.js';

const RUN_REFRESH_MS = 5000;
const LOG_REFRESH_MS = 2000;
const METRICS_REFRESH_MS = 10000;
const METRICS_POINTS = 360;         // an hour at the default 10 s interval
const LOG_KEEP_CHARS = 256 * 1024;  // the tail kept on the page
const LOG_JUMP_BYTES = 128 * 1024;  // a long log is read from this far before its end

function jobKey(job) {
  return `${job.job_num}/${job.replica_num}`;
}

function jobLabel(job) {
  return `job ${job.job_num} · replica ${job.replica_num}`;
}

function fact(label, value) {
  return el('div', {class: 'fact'}, el('div', {class: 'fact-label'}, label),
            el('div', {class: 'fact-value'}, value));
}

export function mountRun(main, ctx, runName, tab) {
  const errors = errorBanner(ctx);
  const updated = freshness('refreshes every 5 s');
  const title = el('h1', {class: 'run-title'}, runName);
  const statusSlot = el('span', {'data-test': 'run-status'});
  const reasonSlot = el('span', {class: 'run-reason', 'data-test': 'run-reason'});
  const facts = el('div', {class: 'facts'});
  const tabs = el('div', {class: 'tabs', role: 'tablist'},
    el('a', {class: 'tab', role: 'tab', href: ctx.href('runs', runName), 'data-tab': 'overview',
             'aria-selected': tab === 'overview' ? 'true' : 'false'}, 'Overview'),
    el('a', {class: 'tab', role: 'tab', href: ctx.href('runs', runName, 'metrics'),
             'data-tab': 'metrics', 'aria-selected': tab === 'metrics' ? 'true' : 'false'},
       'Metrics'));
  const jobPicker = el('select', {class: 'select', 'aria-label': 'Job', 'data-test': 'job-select'});
  const jobPickerLabel = el('label', {class: 'job-picker', hidden: true},
                            el('span', {class: 'muted'}, 'Job'), jobPicker);
  const panel = el('div', {class: 'tab-panel'});
  const factsCard = el('div', {class: 'card'}, facts);
  const config = configSection();
  const summary = summarySection(ctx);
  const tabsRow = el('div', {class: 'tabs-row'}, tabs, jobPickerLabel);
  replace(main,
    el('nav', {class: 'crumbs'}, link(ctx.href('runs'), 'Runs'), el('span', null, '/'),
       el('span', null, runName)),
    el('div', {class: 'page-head'},
       el('div', {class: 'run-heading'}, title, statusSlot, reasonSlot),
       el('div', {class: 'page-actions'}, updated.node)),
    errors.node, factsCard, summary.node, config.node, tabsRow, panel);
  document.title = `${runName} · ${ctx.project} · fleetwatch`;

  let run = null;
  let selected = null;  // jobKey of the selected job
  let child = null;     // the tab's panel: {update(run, job), select(job), destroy()}
  let pickerKeys = '';

  const selectedJob = () => run && (run.jobs.find((j) => jobKey(j) === selected) || run.jobs[0]);

  jobPicker.addEventListener('change', () => {
    selected = jobPicker.value;
    if (child) child.select(selectedJob());
  });

  const render = () => {
    const now = Date.now();
    replace(statusSlot, badge(run.status));
    const reason = statusReason(run);
    reasonSlot.textContent = reason;
    reasonSlot.hidden = !reason;
    reasonSlot.setAttribute('title', statusMessage(run));
    const submitted = parseTime(run.submitted_at);
    replace(facts,
      fact('Type', run.run_type),
      fact('User', run.user_name),
      fact('GPUs', formatGpuRequest(run)),
      fact('Cost so far', formatCost(run.cost)),
      fact('GPU idle', el('span', {'data-test': 'gpu-idle'}, formatIdleShare(run.gpu_idle_ratio))),
      fact('Idle cost', el('span', {'data-test': 'idle-cost'}, formatCost(run.idle_cost))),
      fact('Submitted', el('span', {title: formatDateTime(submitted)}, formatAge(submitted, now))),
      fact('Duration', formatDuration(runDuration(run, now))));
    config.update(run);
    const keys = run.jobs.map(jobKey);
    if (!keys.includes(selected)) selected = keys[0] || null;
    if (keys.join(' ') !== pickerKeys) {  // an open picker stays open across refreshes
      pickerKeys = keys.join(' ');
      replace(jobPicker, run.jobs.map((j) => el('option', {value: jobKey(j)}, jobLabel(j))));
    }
    if (selected) jobPicker.value = selected;
    jobPickerLabel.hidden = run.jobs.length < 2;
  };

  const load = async () => {
    try {
      run = await ctx.api.run(ctx.project, runName);
    } catch (e) {
      errors.show(e, `Could not load run ${runName}. `);
      for (const part of [factsCard, summary.node, config.node, tabsRow, panel]) {
        part.hidden = !run;
      }
      return !run || !isFinal(run.status);  // a missing run: keep trying (it may appear)
    }
    errors.clear();
    for (const part of [factsCard, summary.node, config.node, tabsRow, panel]) part.hidden = false;
    render();
    summary.update(run);
    if (!child) {
      child = tab === 'metrics' ? metricsPanel(panel, ctx, run) : overviewPanel(panel, ctx);
    }
    child.update(run, selectedJob());
    const live = !isFinal(run.status);
    updated.mark(Date.now(), live);
    return live;
  };

  const poller = poll(load, RUN_REFRESH_MS);
  return {
    destroy() {
      poller.stop();
      if (child) child.destroy();
    },
  };
}

// The run's requested resources and its configuration, folded away until opened. Updated in
// place, so an open section stays open (and its text selectable) across refreshes.
function configSection() {
  const resources = el('dl', {class: 'resource-list', 'data-test': 'resources'});
  const pre = el('pre', {class: 'config-text', 'data-test': 'configuration', tabindex: 0});
  const missing = el('p', {class: 'muted', hidden: true},
                     'The server sent no configuration for this run.');
  const node = el('details', {class: 'card config', 'data-test': 'config'},
    el('summary', {class: 'config-summary'}, el('h2', null, 'Configuration'),
       el('span', {class: 'muted small', 'data-test': 'resources-summary'})),
    el('div', {class: 'config-body'},
      el('h3', null, 'Requested resources'), resources,
      el('h3', null, 'Configuration'), missing, pre));
  const summary = node.querySelector('[data-test=resources-summary]');
  let shownResources = null;
  let shownText = null;
  return {
    node,
    update(run) {
      const rows = resourceRows(run);
      const key = JSON.stringify(rows);
      if (key !== shownResources) {
        shownResources = key;
        replace(resources, rows ? rows.map(([label, value]) =>
          el('div', {class: 'resource', 'data-resource': label},
             el('dt', null, label), el('dd', null, value)))
                                : el('div', {class: 'muted'},
                                     'Unknown: the stored configuration cannot be read.'));
        summary.textContent = rows ? rows.map(([label, value]) => `${label}: ${value}`).join(' · ')
                                   : '';
      }
      const text = configurationText(run.configuration);
      if (text !== shownText) {
        shownText = text;
        pre.textContent = text === null ? '' : text;
        pre.hidden = text === null;
        missing.hidden = text !== null;
      }
    },
  };
}

// The jobs table and the selected job's log, followed while the job runs.
function overviewPanel(panel, ctx) {
  const jobsSlot = el('div');
  const logTitle = el('h2', null, 'Logs');
  const logState = el('span', {class: 'muted small'});
  const logError = errorBanner(ctx);
  const pre = el('pre', {class: 'log', 'data-test': 'log', tabindex: 0});
  replace(panel,
    el('section', {class: 'card'}, el('div', {class: 'card-head'}, el('h2', null, 'Jobs')),
       jobsSlot),
    el('section', {class: 'card'}, el('div', {class: 'card-head'}, logTitle, logState),
       logError.node, pre));

  let run = null;
  let job = null;
  let tail = null;

  const renderJobs = () => {
    const now = Date.now();
    const columns = [
      {label: 'Job'}, {label: 'Node', className: 'num'}, {label: 'Replica', className: 'num'},
      {label: 'Instance'}, {label: 'Status'}, {label: 'Reason', className: 'wrap'},
      {label: 'Exit code', className: 'num'}, {label: 'Duration', className: 'num'},
    ];
    const rows = run.jobs.map((j) => {
      const start = parseTime(j.submitted_at);
      const end = j.finished_at ? parseTime(j.finished_at) : now;
      return {
        attrs: {'data-job': jobKey(j), class: job && jobKey(j) === jobKey(job) ? 'selected' : null},
        cells: [
          j.job_name, j.job_num, j.replica_num, orDash(j.instance_name), badge(j.status),
          el('span', {class: 'reason', title: statusMessage(j)}, orDash(statusReason(j))),
          orDash(j.exit_code), formatDuration((end - start) / 1000),
        ],
      };
    });
    replaceKeepingScroll(jobsSlot, run.jobs.length
      ? table(columns, rows, {class: 'data-table', 'data-test': 'jobs-table'})
      : el('div', {class: 'empty'}, 'This run has no jobs.'));
  };

  const follow = (next) => {
    if (tail) tail.stop();
    job = next;
    pre.textContent = '';
    logError.clear();
    logTitle.textContent = run.jobs.length > 1 ? `Logs · ${jobLabel(job)}` : 'Logs';
    if (!job) return;
    tail = followLog(ctx, run.run_name, job, {
      onText(text, replaceAll) {
        const atBottom = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 4;
        let all = replaceAll ? text : pre.textContent + text;
        if (all.length > LOG_KEEP_CHARS) all = all.slice(all.length - LOG_KEEP_CHARS);
        pre.textContent = all;
        if (atBottom) pre.scrollTop = pre.scrollHeight;
      },
      onState(text) {
        logState.textContent = text;
      },
      onError(e) {
        logError.show(e, 'Could not read the log. ');
      },
      onOk() {
        logError.clear();
      },
    });
  };

  return {
    update(nextRun, selectedJob) {
      run = nextRun;
      if (!job || !selectedJob || jobKey(job) !== jobKey(selectedJob)) {
        job = selectedJob;
        renderJobs();
        follow(selectedJob);
      } else {
        job = selectedJob;
        renderJobs();
        if (tail) tail.jobChanged(job);
      }
    },
    select(selectedJob) {
      job = selectedJob;
      renderJobs();
      follow(selectedJob);
    },
    destroy() {
      if (tail) tail.stop();
    },
  };
}

// Reads a job's log from its end and keeps reading while the job runs.
function followLog(ctx, runName, job, on) {
  let offset = 0;
  let decoder = new TextDecoder();
  let first = true;
  let jobFinal = isFinal(job.status);
  const read = async () => {
    let chunk;
    try {
      chunk = await ctx.api.logs(ctx.project, runName,
                                 {jobNum: job.job_num, replicaNum: job.replica_num, offset});
    } catch (e) {
      on.onError(e);
      return !jobFinal;
    }
    on.onOk();
    let replaceAll = first;
    if (first && chunk.size > chunk.bytes.length + LOG_JUMP_BYTES) {
      // A long log: start near its end rather than at byte 0.
      offset = chunk.size - LOG_JUMP_BYTES;
      decoder = new TextDecoder();
      first = false;
      return true;  // read again at once (after the poll interval)
    }
    first = false;
    offset += chunk.bytes.length;
    const text = decoder.decode(chunk.bytes, {stream: true});
    if (text || replaceAll) on.onText(text, replaceAll);
    const status = chunk.jobStatus || job.status;
    jobFinal = jobFinal || isFinal(status);
    const more = offset < chunk.size;
    if (offset === 0 && chunk.size === 0) {
      on.onState(jobFinal ? 'The job wrote nothing.' : 'No output yet.');
    } else {
      on.onState(jobFinal && !more ? `${formatBytes(chunk.size)}, complete`
                                   : `${formatBytes(chunk.size)}, following`);
    }
    return more || !jobFinal;
  };
  let poller = poll(read, LOG_REFRESH_MS);
  return {
    stop: () => poller.stop(),
    // The run was reloaded: a job that has just finished gets one last read.
    jobChanged(next) {
      if (isFinal(next.status) && !jobFinal) {
        jobFinal = true;
        poller.stop();
        poller = poll(read, LOG_REFRESH_MS);
      }
    },
  };
}

// The four charts of the selected job, refreshed every 10 s while it runs.
function metricsPanel(panel, ctx, initialRun) {
  const cards = {
    cpu: new ChartCard({
      key: 'cpu', title: 'CPU utilization %', unit: 'percent',
      summary: (c) => formatPercent(latest(c)) +
                      (c.cpuCount ? ` of ${c.cpuCount} CPU${c.cpuCount === 1 ? '' : 's'}` : ''),
    }),
    memory: new ChartCard({
      key: 'memory', title: 'System memory used', unit: 'bytes',
      // "208MB of 256MB limit", or "208MB · no limit (host 24GB)".
      summary: (c) => {
        const used = formatBytes(latest(c, 0));
        if (c.limited) return `${used} of ${formatBytes(latest(c, 1))} limit`;
        if (!c.unlimited) return used;
        return `${used} · no limit` + (c.hostBytes ? ` (host ${formatBytes(c.hostBytes)})` : '');
      },
    }),
    gpuUtil: new ChartCard({
      key: 'gpu-util', title: 'GPU utilization %', unit: 'percent',
      summary: (c) => {
        const values = c.series.map((_, i) => latest(c, i)).filter((v) => v !== null);
        const mean = values.reduce((a, b) => a + b, 0) / Math.max(1, values.length);
        return c.series.length > 1 ? `avg ${formatPercent(mean)} of ${c.series.length} GPUs`
                                   : formatPercent(mean);
      },
    }),
    gpuMemory: new ChartCard({
      key: 'gpu-memory', title: 'GPU memory used', unit: 'bytes',
      summary: (c) => {
        const used = c.series.filter((s) => s.kind === 'used');
        const total = c.series.find((s) => s.kind === 'total');
        const sum = used.reduce((a, s) => a + (s.values[s.values.length - 1] || 0), 0);
        const cap = total ? (total.values[total.values.length - 1] || 0) * used.length : 0;
        return formatBytes(sum) + (cap ? ` of ${formatBytes(cap)}` : '');
      },
    }),
  };
  const errors = errorBanner(ctx);
  const note = el('p', {class: 'muted small metrics-note'});
  // A job without GPUs gets this one line instead of two empty GPU charts.
  const noGpus = el('p', {class: 'no-gpus', 'data-test': 'no-gpus', hidden: true},
                    el('strong', null, 'No GPUs'), el('span', {class: 'muted'},
                                                      ' · this job runs on CPUs only'));
  replace(panel, errors.node,
    el('div', {class: 'chart-grid'}, cards.cpu.node, cards.memory.node, cards.gpuUtil.node,
       cards.gpuMemory.node),
    noGpus, note);

  let run = initialRun;
  let job = null;
  let poller = null;

  const showGpuCharts = (show) => {
    cards.gpuUtil.node.hidden = !show;
    cards.gpuMemory.node.hidden = !show;
    noGpus.hidden = show;
  };
  showGpuCharts(requestedGpuCount(run) !== 0);

  const emptyText = () => {
    if (!job) return 'This run has no jobs.';
    if (['submitted', 'provisioning', 'pulling'].includes(job.status)) {
      return 'No data yet: the job has not started.';
    }
    if (isFinal(job.status)) return 'No metrics were collected for this job.';
    return 'No data yet: the first points arrive shortly after the job starts.';
  };

  const load = async () => {
    if (!job) {
      for (const card of Object.values(cards)) card.update(null, emptyText());
      showGpuCharts(requestedGpuCount(run) !== 0);
      return false;
    }
    const current = job;
    let metrics;
    try {
      metrics = await ctx.api.jobMetrics(ctx.project, run.run_name, {
        runId: run.id, jobNum: current.job_num, replicaNum: current.replica_num,
        limit: METRICS_POINTS,
      });
    } catch (e) {
      errors.show(e, 'Could not load the metrics. ');
      return !isFinal(current.status);
    }
    if (!job || jobKey(current) !== jobKey(job)) return true;  // another job was picked
    errors.clear();
    const data = chartData(metrics, {memoryLimit: hasMemoryLimit(run)});
    const empty = emptyText();
    cards.cpu.update(data && data.cpu, empty);
    cards.memory.update(data && data.memory, empty);
    // CPU-only: the run asked for no GPUs, or (its request unknown) the data has no GPU series.
    const gpus = requestedGpuCount(run);
    const cpuOnly = gpus === 0 || (gpus === null && data !== null && !data.gpuUtil &&
                                   !data.gpuMemory);
    showGpuCharts(!cpuOnly);
    const noGpuData = 'No GPU data for this job in this window.';
    cards.gpuUtil.update(data && data.gpuUtil, data ? noGpuData : empty);
    cards.gpuMemory.update(data && data.gpuMemory, data ? noGpuData : empty);
    const live = !isFinal(current.status);
    note.textContent = `${jobLabel(current)} · the newest ${METRICS_POINTS} points` +
                       (live ? ' · refreshes every 10 s while the job runs' : '') +
                       ' · hover a chart to see its values';
    return live;
  };

  const restart = () => {
    if (poller) poller.stop();
    poller = poll(load, METRICS_REFRESH_MS);
  };

  return {
    update(nextRun, selectedJob) {
      run = nextRun;
      const changed = !job || !selectedJob || jobKey(job) !== jobKey(selectedJob);
      const wasFinal = job && isFinal(job.status);
      job = selectedJob;
      // A new job, or the job has just ended: load now (the last points, then stop).
      if (changed || (!wasFinal && job && isFinal(job.status))) restart();
    },
    select(selectedJob) {
      job = selectedJob;
      restart();
    },
    destroy() {
      if (poller) poller.stop();
      for (const card of Object.values(cards)) card.destroy();
    },
  };
}
