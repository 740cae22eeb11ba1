// The job-metrics API's reply (spec/METRICS.md) as the four charts' data. Pure: no DOM.
//
// The reply holds series of equal length, newest first, with RFC 3339 timestamps; a chart wants
// seconds since the epoch, oldest first. Each chart: {x: [s...], series: [{label, values, kind}]}
// where kind 'total' is a limit drawn as a dashed line.

function byName(metrics) {
  const map = new Map();
  for (const m of metrics || []) {
    if (m && typeof m.name === 'string' && Array.isArray(m.values)) map.set(m.name, m);
  }
  return map;
}

function oldestFirst(series) {
  return series ? series.values.slice().reverse() : null;
}

// Indices i of the series named `${prefix}${i}`, ascending.
function gpuIndices(map, prefix) {
  const out = [];
  for (const name of map.keys()) {
    if (!name.startsWith(prefix)) continue;
    const i = Number(name.slice(prefix.length));
    if (Number.isInteger(i) && i >= 0) out.push(i);
  }
  return out.sort((a, b) => a - b);
}

// {cpu, memory, gpuUtil, gpuMemory, points} for the charts; null when there is no data yet
// (the API answers {"metrics": []} until a job has two points). gpuUtil and gpuMemory are null
// when the job has no GPU series. GPU i is the job's i-th GPU (not the host's index).
// `memoryLimit`: whether the job has a memory limit (see resources.js hasMemoryLimit). Only then
// is memory_total_bytes a limit, drawn as a dashed line; otherwise it is the host's memory, kept
// as `memory.hostBytes` for the header and left off the chart so that the axis fits the usage.
export function chartData(metrics, {memoryLimit = false} = {}) {
  const map = byName(metrics);
  const cpu = map.get('cpu_usage_percent');
  if (!cpu || cpu.values.length === 0 || !Array.isArray(cpu.timestamps)) return null;
  const x = cpu.timestamps.slice().reverse().map((t) => Date.parse(t) / 1000);
  const points = x.length;

  const cpuPercent = oldestFirst(cpu);
  const cpus = oldestFirst(map.get('cpus_detected_num'));
  // cpu_usage_percent is relative to one core: divided by the job's CPUs it is 0..100.
  const cpuValues = cpuPercent.map((v, i) => {
    const n = cpus ? cpus[i] : 1;
    return n > 0 ? v / n : v;
  });

  const memory = {
    x,
    series: [{label: 'Working set', values: oldestFirst(map.get('memory_working_set_bytes')) ||
                                          new Array(points).fill(null), kind: 'used'}],
    limited: false,           // a limit line is drawn
    unlimited: !memoryLimit,  // the job has no limit
    hostBytes: null,
  };
  const memoryTotal = oldestFirst(map.get('memory_total_bytes'));
  if (memoryTotal && memoryTotal.some((v) => v > 0)) {
    if (memoryLimit) {
      memory.series.push({label: 'Limit', values: memoryTotal, kind: 'total'});
      memory.limited = true;
    } else {
      memory.hostBytes = memoryTotal[memoryTotal.length - 1] || null;
    }
  }

  const label = (i) => `GPU ${i}`;
  const utilIndices = gpuIndices(map, 'gpu_util_percent_gpu');
  const memIndices = gpuIndices(map, 'gpu_memory_usage_bytes_gpu');
  const gpuUtil = utilIndices.length === 0 ? null : {
    x,
    series: utilIndices.map((i) => ({
      label: label(i), values: oldestFirst(map.get(`gpu_util_percent_gpu${i}`)), kind: 'used',
    })),
  };
  let gpuMemory = null;
  if (memIndices.length > 0) {
    gpuMemory = {
      x,
      series: memIndices.map((i) => ({
        label: label(i), values: oldestFirst(map.get(`gpu_memory_usage_bytes_gpu${i}`)),
        kind: 'used',
      })),
    };
    const total = oldestFirst(map.get('gpu_memory_total_bytes'));
    if (total && total.some((v) => v > 0)) {
      gpuMemory.series.push({label: 'Total per GPU', values: total, kind: 'total'});
    }
  }
  return {
    points,
    cpu: {x, series: [{label: 'CPU', values: cpuValues, kind: 'used'}],
          cpuCount: cpus ? cpus[cpus.length - 1] : null},
    memory,
    gpuUtil,
    gpuMemory,
  };
}

// The newest value of a chart's series `i`, or null.
export function latest(chart, i = 0) {
  if (!chart || !chart.series[i]) return null;
  const values = chart.series[i].values;
  return values.length ? values[values.length - 1] : null;
}

// The top of a chart's y axis for byte values whose largest drawn value is `max`: a limit line
// (`hasLimit`) sits just below the top; usage alone gets a quarter of headroom, so that a job
// using 208MB fills the chart instead of lying flat on a host's 24GB.
export function byteAxisTop(max, hasLimit) {
  if (!Number.isFinite(max) || max <= 0) return 1;
  return max * (hasLimit ? 1.08 : 1.25);
}
