// Formatting of figures for people. Pure functions of their arguments (no DOM, no clock), so
// they run under Node's test runner too.

const KIB = 1024;
const MIB = KIB * 1024;
const GIB = MIB * 1024;
const TIB = GIB * 1024;

function trimmed(value, digits) {
  return value.toFixed(digits).replace(/\.0+$/, '').replace(/(\.\d*?)0+$/, '$1');
}

// 1.5GB, 512MB, 80GB, as the CLI writes them (powers of 1024).
export function formatBytes(bytes) {
  if (bytes === null || bytes === undefined || !Number.isFinite(bytes)) return '—';
  const b = Math.abs(bytes);
  const sign = bytes < 0 ? '-' : '';
  if (b >= TIB) return sign + trimmed(b / TIB, 1) + 'TB';
  if (b >= GIB) return sign + trimmed(b / GIB, 1) + 'GB';
  if (b >= MIB) return sign + trimmed(b / MIB, 0) + 'MB';
  if (b >= KIB) return sign + trimmed(b / KIB, 0) + 'KB';
  return sign + Math.round(b) + 'B';
}

export function formatPercent(value) {
  if (value === null || value === undefined || !Number.isFinite(value)) return '—';
  return (value >= 10 || value === 0 ? Math.round(value) : trimmed(value, 1)) + '%';
}

// A run's idle share of its held GPU time (0.0-1.0) as a percent; null (no GPU held yet) is —.
export function formatIdleShare(ratio) {
  if (ratio === null || ratio === undefined || !Number.isFinite(ratio)) return '—';
  return formatPercent(Math.min(1, Math.max(0, ratio)) * 100);
}

// Money so far: $12.34; amounts under a cent are still visible as <$0.01.
export function formatCost(dollars) {
  if (dollars === null || dollars === undefined || !Number.isFinite(dollars)) return '—';
  if (dollars > 0 && dollars < 0.01) return '<$0.01';
  return '$' + dollars.toFixed(2);
}

// A price per hour: $2.5/h, up to 4 decimals as the CLI shows it; null (no price) is —.
export function formatPrice(perHour) {
  if (perHour === null || perHour === undefined || !Number.isFinite(perHour)) return '—';
  return '$' + trimmed(perHour, 4) + '/h';
}

// 45s, 12m 5s, 3h 4m, 2d 3h.
export function formatDuration(seconds) {
  if (seconds === null || seconds === undefined || !Number.isFinite(seconds)) return '—';
  let s = Math.max(0, Math.floor(seconds));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d > 0) return `${d}d ${h}h`;
  if (h > 0) return `${h}h ${m}m`;
  if (m > 0) return `${m}m ${s}s`;
  return `${s}s`;
}

// "just now", "42s ago", "5 min ago", "3 h ago", "2 d ago" from two times in milliseconds.
export function formatAge(thenMs, nowMs) {
  if (!Number.isFinite(thenMs)) return '—';
  const s = Math.floor((nowMs - thenMs) / 1000);
  if (s < 5) return 'just now';
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
  return `${Math.floor(s / 86400)} d ago`;
}

// The API's RFC 3339 UTC timestamp as milliseconds since the epoch; NaN for null or garbage.
export function parseTime(text) {
  if (typeof text !== 'string') return NaN;
  return Date.parse(text);
}

function pad(n) {
  return String(n).padStart(2, '0');
}

// 2026-01-02 15:04:05 in the browser's time zone.
export function formatDateTime(ms) {
  if (!Number.isFinite(ms)) return '—';
  const t = new Date(ms);
  return `${t.getFullYear()}-${pad(t.getMonth() + 1)}-${pad(t.getDate())} ` +
         `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

export function formatClock(ms) {
  if (!Number.isFinite(ms)) return '—';
  const t = new Date(ms);
  return `${pad(t.getHours())}:${pad(t.getMinutes())}:${pad(t.getSeconds())}`;
}

// A run's GPU request from its `resources` (a run as the API shows it, lists included, or its
// normalized configuration): "A100:2", "2", "A100:2:40GB" or "—".
export function formatGpuRequest(run) {
  const gpu = run && run.resources && run.resources.gpu;
  if (gpu === null || gpu === undefined) return '—';
  if (typeof gpu === 'number') return gpu > 0 ? String(gpu) : '—';
  if (typeof gpu === 'string') return gpu || '—';
  if (typeof gpu !== 'object' || !(gpu.count > 0)) return '—';
  const parts = [];
  if (gpu.name) parts.push(String(gpu.name));
  parts.push(String(gpu.count));
  if (gpu.memory) parts.push(String(gpu.memory));
  return parts.join(':');
}

// An instance's GPUs grouped by name, in order of first appearance: [{name, count, memoryBytes}].
export function groupGpus(gpus) {
  const groups = [];
  for (const gpu of gpus || []) {
    const name = String(gpu.name ?? '');
    let group = groups.find((g) => g.name === name);
    if (!group) {
      group = {name, count: 0, memoryBytes: gpu.memory_bytes};
      groups.push(group);
    }
    group.count += 1;
  }
  return groups;
}
