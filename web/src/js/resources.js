// What a run asked for: its normalized `resources` ({"cpu", "memory", "gpu"}, docs/api.md) and
// its configuration, as the run page shows them. Pure: no DOM.
import {formatGpuRequest} from './format.js';

function resourcesOf(run) {
  const r = run && run.resources;
  return r && typeof r === 'object' && !Array.isArray(r) ? r : null;
}

// The number of GPUs the run asked for; null when unknown (no readable resources).
export function requestedGpuCount(run) {
  const r = resourcesOf(run);
  if (!r) return null;
  const gpu = r.gpu;
  if (gpu === null || gpu === undefined) return 0;
  if (typeof gpu === 'number') return Number.isFinite(gpu) && gpu > 0 ? gpu : 0;
  if (typeof gpu === 'string') return /^\d+$/.test(gpu) ? Number(gpu) : null;
  if (typeof gpu === 'object' && Number.isFinite(gpu.count)) return Math.max(0, gpu.count);
  return null;
}

// Whether the run's jobs have a memory limit: `resources.memory` is set. Without one the job may
// use the host's memory, which its metrics then report as the total.
export function hasMemoryLimit(run) {
  const r = resourcesOf(run);
  return Boolean(r && r.memory !== null && r.memory !== undefined && r.memory !== '');
}

// The requested resources as [label, text] rows; null when the run's resources are unknown.
export function resourceRows(run) {
  const r = resourcesOf(run);
  if (!r) return null;
  const cpu = r.cpu === null || r.cpu === undefined ? '—' : String(r.cpu);
  const gpus = requestedGpuCount(run) === 0 ? 'none' : formatGpuRequest(run);
  return [
    ['CPUs', cpu],
    ['Memory', hasMemoryLimit(run) ? `${r.memory} (limit)` : 'no limit'],
    ['GPUs', gpus],
  ];
}

// The configuration as text to show: YAML (a string) as it is, JSON pretty-printed; null when
// the reply has none.
export function configurationText(configuration) {
  if (configuration === null || configuration === undefined) return null;
  if (typeof configuration === 'string') return configuration;
  return JSON.stringify(configuration, null, 2);
}
