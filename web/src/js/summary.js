// A run's summary (GET /api/project/{p}/runs/{run}/summary, docs/api.md "Run summary") as the
// rows the run page shows. Pure: no DOM.
import {formatBytes, formatCost, formatDuration, formatPercent} from './format.js';

function num(value) {
  return typeof value === 'number' && Number.isFinite(value) ? value : 0;
}

function short(value) {
  const a = Math.abs(value);
  return value.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0);
}

// 850 J, 12.5 kJ, 2.52 MJ, 1.20 GJ; an estimate (power × time) starts with "~".
export function formatEnergy(joules, estimated = false) {
  const j = num(joules);
  const text = j < 1e3 ? `${j.toFixed(0)} J`
             : j < 1e6 ? `${short(j / 1e3)} kJ`
             : j < 1e9 ? `${short(j / 1e6)} MJ`
             : `${short(j / 1e9)} GJ`;
  return estimated ? `~${text}` : text;
}

// 8.5 g, 850 g, 12.3 kg, 1.50 t.
export function formatCarbon(grams) {
  const g = num(grams);
  if (g < 1e3) return `${g.toFixed(g < 10 ? 1 : 0)} g`;
  if (g < 1e6) return `${short(g / 1e3)} kg`;
  return `${short(g / 1e6)} t`;
}

function used(peak, total) {
  return num(total) > 0 ? `${formatBytes(num(peak))} / ${formatBytes(num(total))}`
                        : formatBytes(num(peak));
}

// {totals: [[label, text]], jobs: [[cells]], gpus: [[cells]], notes: [{job, rule, text}]}: every
// cell a string, the server's text left as it is (the page shows it as text).
export function summaryRows(summary) {
  const s = summary || {};
  const jobs = Array.isArray(s.jobs) ? s.jobs : [];
  const out = {
    totals: [
      ['GPU energy', formatEnergy(s.energy_joules, s.energy_estimated === true)],
      ['Carbon (estimate)', formatCarbon(s.carbon_grams)],
      ['Cost', formatCost(num(s.cost_dollars))],
    ],
    jobs: [],
    gpus: [],
    notes: [],
  };
  for (const job of jobs) {
    const name = String(job.job_name ?? '');
    out.jobs.push([
      name,
      String(job.status ?? ''),
      formatDuration(num(job.duration_seconds)),
      `${num(job.cpu_mean_cores).toFixed(1)} / ${num(job.cpu_peak_cores).toFixed(1)}`,
      used(job.memory_peak_bytes, job.memory_limit_bytes),
      formatEnergy(job.energy_joules, job.energy_estimated === true),
      formatCarbon(job.carbon_grams),
      formatCost(num(job.cost_dollars)),
    ]);
    for (const gpu of Array.isArray(job.gpus) ? job.gpus : []) {
      out.gpus.push([
        name,
        String(num(gpu.index)),
        `${formatPercent(num(gpu.util_mean_percent))} / ${formatPercent(num(gpu.util_max_percent))}`,
        formatPercent(num(gpu.idle_share) * 100),
        used(gpu.memory_peak_bytes, gpu.memory_total_bytes),
        formatEnergy(gpu.energy_joules, gpu.energy_estimated === true),
        String(num(gpu.xid_events)),
      ]);
    }
    for (const note of Array.isArray(job.notes) ? job.notes : []) {
      out.notes.push({job: name, rule: String(note.rule ?? ''), text: String(note.text ?? '')});
    }
  }
  return out;
}
