// The web UI's pure modules under Node's own test runner: `node --test web/tests/unit.test.mjs`.
import assert from 'node:assert/strict';
import test from 'node:test';

import {errorFromReply, query} from '../src/js/api.js';
import {formatAge, formatBytes, formatCost, formatDuration, formatGpuRequest, formatIdleShare,
        formatPercent, formatPrice, groupGpus} from '../src/js/format.js';
import {byteAxisTop, chartData, latest} from '../src/js/metrics.js';
import {configurationText, hasMemoryLimit, requestedGpuCount,
        resourceRows} from '../src/js/resources.js';
import {isFinal, statusMessage, statusReason, tone} from '../src/js/status.js';

test('bytes are written as the CLI writes them', () => {
  assert.equal(formatBytes(0), '0B');
  assert.equal(formatBytes(512 * 1024 * 1024), '512MB');
  assert.equal(formatBytes(1.5 * 1024 ** 3), '1.5GB');
  assert.equal(formatBytes(80 * 1024 ** 3), '80GB');
  assert.equal(formatBytes(2 * 1024 ** 4), '2TB');
  assert.equal(formatBytes(null), '—');
});

test('percentages, money and prices', () => {
  assert.equal(formatPercent(0), '0%');
  assert.equal(formatPercent(4.25), '4.3%');
  assert.equal(formatPercent(99.6), '100%');
  assert.equal(formatCost(0), '$0.00');
  assert.equal(formatCost(0.004), '<$0.01');
  assert.equal(formatCost(12.345), '$12.35');
  assert.equal(formatIdleShare(0.375), '38%');
  assert.equal(formatIdleShare(0.04), '4%');
  assert.equal(formatIdleShare(null), '—');
  assert.equal(formatIdleShare(7), '100%');
  assert.equal(formatPrice(2.5), '$2.5/h');
  assert.equal(formatPrice(null), '—');
});

test('durations and ages', () => {
  assert.equal(formatDuration(45.9), '45s');
  assert.equal(formatDuration(12 * 60 + 5), '12m 5s');
  assert.equal(formatDuration(3 * 3600 + 4 * 60), '3h 4m');
  assert.equal(formatDuration(2 * 86400 + 3 * 3600), '2d 3h');
  assert.equal(formatDuration(-5), '0s');
  assert.equal(formatAge(0, 2000), 'just now');
  assert.equal(formatAge(0, 42000), '42s ago');
  assert.equal(formatAge(0, 5 * 60000), '5 min ago');
});

test('a run\'s GPU request in every normalized shape', () => {
  assert.equal(formatGpuRequest({resources: {cpu: 1}}), '—');
  assert.equal(formatGpuRequest({resources: {gpu: {count: 2}}}), '2');
  assert.equal(formatGpuRequest({resources: {gpu: {name: 'A100', count: 2, memory: '40GB'}}}),
               'A100:2:40GB');
  assert.equal(formatGpuRequest(null), '—');
  // A run from a list: no configuration, its resources at the top.
  assert.equal(formatGpuRequest({run_name: 'r', resources: {gpu: {name: 'H100', count: 8}}}), 'H100:8');
});

test('GPUs are grouped by name in order, names kept as they are', () => {
  const hostile = '<img src=x onerror=alert(1)>';
  assert.deepEqual(groupGpus([{name: 'H100', memory_bytes: 1}, {name: hostile, memory_bytes: 2},
                              {name: 'H100', memory_bytes: 1}]),
                   [{name: 'H100', count: 2, memoryBytes: 1},
                    {name: hostile, count: 1, memoryBytes: 2}]);
});

test('statuses: final ones and colours', () => {
  assert.ok(isFinal('done') && isFinal('failed') && isFinal('terminated') && isFinal('aborted'));
  assert.ok(!isFinal('running') && !isFinal('terminating'));
  assert.notEqual(tone('running'), tone('failed'));
  assert.notEqual(tone('done'), tone('failed'));
});

test('API errors become sentences; a non-JSON body is not shown', () => {
  const e = errorFromReply(401, '{"error":{"code":"unauthenticated","message":"unknown token"}}');
  assert.equal(e.message, 'The token was not accepted (HTTP 401 unauthenticated): unknown token');
  assert.equal(e.status, 401);
  assert.equal(e.code, 'unauthenticated');
  const html = errorFromReply(502, '<html><body>Bad gateway</body></html>');
  assert.equal(html.message, 'The request failed (HTTP 502)');
  assert.equal(query({a: 'x y', b: null, c: 0}), '?a=x%20y&c=0');
});

const series = (name, values) => ({
  name,
  timestamps: values.map((_, i) => `2026-01-01T00:00:${String(10 - i).padStart(2, '0')}Z`),
  values,
});

test('metrics: no data gives null', () => {
  assert.equal(chartData([]), null);
  assert.equal(chartData(undefined), null);
});

test('metrics: oldest first, CPU per allocated CPU, limits as lines, one series per GPU', () => {
  const data = chartData([
    series('cpu_usage_percent', [200, 100]),  // newest first
    series('memory_usage_bytes', [30, 20]),
    series('memory_working_set_bytes', [3, 2]),
    series('cpus_detected_num', [2, 2]),
    series('memory_total_bytes', [100, 100]),
    series('gpus_detected_num', [2, 2]),
    series('gpu_memory_total_bytes', [80, 80]),
    series('gpu_memory_usage_bytes_gpu0', [10, 11]),
    series('gpu_memory_usage_bytes_gpu1', [20, 21]),
    series('gpu_util_percent_gpu0', [35, 30]),
    series('gpu_util_percent_gpu1', [70, 60]),
  ], {memoryLimit: true});
  assert.equal(data.points, 2);
  assert.deepEqual(data.cpu.x, [Date.parse('2026-01-01T00:00:09Z') / 1000,
                                Date.parse('2026-01-01T00:00:10Z') / 1000]);
  assert.deepEqual(data.cpu.series[0].values, [50, 100]);
  assert.equal(data.cpu.cpuCount, 2);
  assert.deepEqual(data.memory.series.map((s) => [s.label, s.kind, s.values]),
                   [['Working set', 'used', [2, 3]], ['Limit', 'total', [100, 100]]]);
  assert.equal(data.memory.limited, true);
  assert.equal(data.memory.unlimited, false);
  assert.deepEqual(data.gpuUtil.series.map((s) => [s.label, s.values]),
                   [['GPU 0', [30, 35]], ['GPU 1', [60, 70]]]);
  assert.deepEqual(data.gpuMemory.series.map((s) => [s.label, s.kind]),
                   [['GPU 0', 'used'], ['GPU 1', 'used'], ['Total per GPU', 'total']]);
  assert.equal(latest(data.gpuUtil, 1), 70);
});

test('metrics: a job without GPUs has no GPU charts', () => {
  const data = chartData([series('cpu_usage_percent', [50]), series('cpus_detected_num', [1]),
                          series('memory_working_set_bytes', [1]),
                          series('memory_total_bytes', [0])]);
  assert.equal(data.gpuUtil, null);
  assert.equal(data.gpuMemory, null);
  assert.equal(data.memory.series.length, 1);  // no total line for an unknown total
});

test('metrics: without a memory limit the host\'s memory is not drawn, only named', () => {
  const data = chartData([series('cpu_usage_percent', [50, 40]),
                          series('memory_working_set_bytes', [208, 200]),
                          series('memory_total_bytes', [24000, 24000])]);
  assert.deepEqual(data.memory.series.map((s) => s.kind), ['used']);
  assert.equal(data.memory.limited, false);
  assert.equal(data.memory.unlimited, true);
  assert.equal(data.memory.hostBytes, 24000);
});

test('the byte axis: headroom over the usage, just above a limit', () => {
  assert.equal(byteAxisTop(200, false), 250);
  assert.equal(byteAxisTop(100, true), 108);
  assert.equal(byteAxisTop(0, false), 1);
  assert.equal(byteAxisTop(NaN, true), 1);
});

test('requested resources: GPUs, the memory limit, rows to show', () => {
  const gpuRun = {resources: {cpu: 4, gpu: {name: 'A100', count: 2}}};
  const cpuRun = {resources: {cpu: 1, memory: '256MB'}};
  assert.equal(requestedGpuCount(gpuRun), 2);
  assert.equal(requestedGpuCount(cpuRun), 0);
  assert.equal(requestedGpuCount({resources: null}), null);
  assert.equal(requestedGpuCount({}), null);
  assert.equal(hasMemoryLimit(cpuRun), true);
  assert.equal(hasMemoryLimit(gpuRun), false);
  assert.equal(hasMemoryLimit({resources: null}), false);
  assert.deepEqual(resourceRows(gpuRun),
                   [['CPUs', '4'], ['Memory', 'no limit'], ['GPUs', 'A100:2']]);
  assert.deepEqual(resourceRows(cpuRun),
                   [['CPUs', '1'], ['Memory', '256MB (limit)'], ['GPUs', 'none']]);
  assert.equal(resourceRows({resources: null}), null);
});

test('configurations: YAML as it is, JSON pretty-printed, none as null', () => {
  assert.equal(configurationText('type: task\n'), 'type: task\n');
  assert.equal(configurationText({type: 'task', env: {A: 'x\ny'}}),
               '{\n  "type": "task",\n  "env": {\n    "A": "x\\ny"\n  }\n}');
  assert.equal(configurationText(undefined), null);
  assert.equal(configurationText(null), null);
});

test('status reasons: the server\'s status_message, else composed as the CLI does', () => {
  // The server's words: the part in brackets when it starts with the status.
  const waiting = {status: 'submitted', jobs: [],
                   status_message: 'submitted (waiting: 0 of 1 CPUs free on local)'};
  assert.equal(statusReason(waiting), 'waiting: 0 of 1 CPUs free on local');
  assert.equal(statusMessage(waiting), 'submitted (waiting: 0 of 1 CPUs free on local)');
  assert.equal(statusReason({status: 'failed', status_message: 'failed (no capacity: no ' +
                             'instance of project ml has a GPU named banana)'}),
               'no capacity: no instance of project ml has a GPU named banana');
  assert.equal(statusReason({status: 'done', status_message: 'done'}), '');
  assert.equal(statusReason({status: 'failed', status_message: 'something else'}),
               'something else');
  const hostile = '"q" <script>alert(1)</script>\n(x)';
  assert.equal(statusReason({status: 'failed', status_message: `failed (${hostile})`}), hostile);
  // Composed: a failed run says why its failed job failed.
  assert.equal(statusMessage({status: 'failed', termination_reason: 'job_failed', jobs: [
    {status: 'failed', termination_reason: 'container_exited_with_error', exit_code: 3}]}),
               'failed (exit 3)');
  assert.equal(statusMessage({status: 'failed', termination_reason: 'job_failed', jobs: [
    {status: 'failed', termination_reason: 'failed_to_start_due_to_no_capacity',
     exit_code: null}]}), 'failed (no capacity)');
  assert.equal(statusMessage({status: 'terminated', termination_reason: 'stopped_by_user',
                              jobs: [{status: 'terminated',
                                      termination_reason: 'max_duration_exceeded'}]}),
               'terminated (max duration)');
  assert.equal(statusMessage({status: 'done', termination_reason: 'all_jobs_done',
                              jobs: [{status: 'done', exit_code: 0}]}), 'done');
  // Jobs: a failed one's exit code, a stopped one's reason (not the exit code of the stop).
  assert.equal(statusReason({status: 'failed', termination_reason: 'container_exited_with_error',
                             exit_code: 3}), 'exit 3');
  assert.equal(statusReason({status: 'terminated', termination_reason: 'terminated_by_user',
                             exit_code: 143}), 'stopped by user');
  assert.equal(statusReason({status: 'done', termination_reason: 'done_by_runner',
                             exit_code: 0}), '');
  assert.equal(statusReason(null), '');
});

test('a run summary becomes the rows of the run page, text left as text', async () => {
  const {formatCarbon, formatEnergy, summaryRows} = await import('../src/js/summary.js');
  assert.equal(formatEnergy(850), '850 J');
  assert.equal(formatEnergy(12500), '12.5 kJ');
  assert.equal(formatEnergy(2.52e6), '2.52 MJ');
  assert.equal(formatEnergy(2.52e6, true), '~2.52 MJ');
  assert.equal(formatCarbon(280), '280 g');
  assert.equal(formatCarbon(12300), '12.3 kg');
  const hostile = '<img src=x onerror=alert(1)>';
  const rows = summaryRows({
    energy_joules: 2.52e6, energy_estimated: false, carbon_grams: 280, cost_dollars: 3.6,
    jobs: [{job_name: hostile, status: 'done', duration_seconds: 3600, cpu_mean_cores: 1,
            cpu_peak_cores: 1.2, memory_peak_bytes: 2 * 1024 ** 3, memory_limit_bytes: 64 * 1024 ** 3,
            energy_joules: 2.52e6, carbon_grams: 280, cost_dollars: 3.6,
            gpus: [{index: 0, util_mean_percent: 12, util_max_percent: 40, idle_share: 0.5,
                    memory_peak_bytes: 9 * 1024 ** 3, memory_total_bytes: 80 * 1024 ** 3,
                    energy_joules: 2.52e6, xid_events: 2}],
            notes: [{rule: 'cpu_bound', text: hostile}]}],
  });
  assert.deepEqual(rows.totals, [['GPU energy', '2.52 MJ'], ['Carbon (estimate)', '280 g'],
                                 ['Cost', '$3.60']]);
  assert.deepEqual(rows.jobs[0], [hostile, 'done', '1h 0m', '1.0 / 1.2', '2GB / 64GB', '2.52 MJ',
                                  '280 g', '$3.60']);
  assert.deepEqual(rows.gpus[0], [hostile, '0', '12% / 40%', '50%', '9GB / 80GB', '2.52 MJ', '2']);
  assert.deepEqual(rows.notes, [{job: hostile, rule: 'cpu_bound', text: hostile}]);
  assert.deepEqual(summaryRows(null).jobs, []);
});
