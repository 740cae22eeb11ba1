// A chart card: a titled uPlot chart of one figure of a job, with the newest value in its
// header, a legend that shows the values and time under the cursor, and an empty state.
import uPlot from '../vendor/uPlot.esm.js';
import {el, replace} from './dom.js';
import {formatBytes, formatClock, formatDateTime, formatPercent} from './format.js';
import {byteAxisTop} from './metrics.js';

const PALETTE = ['#2563eb', '#f59e0b', '#10b981', '#8b5cf6', '#ef4444', '#0ea5e9', '#ec4899',
                 '#84cc16'];
const TOTAL_COLOR = '#64748b';
const FONT = '12px system-ui, -apple-system, "Segoe UI", Roboto, sans-serif';

const MIN_SPAN_SECONDS = 60;  // a young job's first points start at the right, like a live chart
// Tick steps: whole seconds and up for time, powers of two of each unit for bytes (so the axis
// reads 8GB, 16GB rather than 9.3GB, 18.6GB).
const TIME_INCRS = [1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                    43200, 86400, 172800, 604800];
const BYTE_INCRS = [1, 1024, 1024 ** 2, 1024 ** 3, 1024 ** 4].flatMap(
    (unit) => [1, 2, 4, 8, 16, 32, 64, 128, 256, 512].map((m) => m * unit));

function timeTicks(u, ticks, axisIdx, space, incr) {
  const pad = (n) => String(n).padStart(2, '0');
  return ticks.map((t) => {
    const d = new Date(t * 1000);
    if (incr >= 86400) return `${pad(d.getMonth() + 1)}-${pad(d.getDate())}`;
    const clock = formatClock(t * 1000);
    return incr >= 60 ? clock.slice(0, 5) : clock;
  });
}

function formatterFor(unit) {
  return unit === 'bytes' ? formatBytes : formatPercent;
}

function withAlpha(hex, alpha) {
  const n = parseInt(hex.slice(1), 16);
  return `rgba(${(n >> 16) & 255}, ${(n >> 8) & 255}, ${n & 255}, ${alpha})`;
}

export class ChartCard {
  // `key`: a stable name for tests (data-chart); `unit`: 'percent' or 'bytes'; `summary`: a
  // function of the chart data giving the header's text.
  constructor({key, title, unit, summary}) {
    this.unit = unit;
    this.summary = summary;
    this.plot = null;
    this.shape = '';
    this.latest = el('span', {class: 'chart-latest'});
    this.body = el('div', {class: 'chart-body'});
    this.node = el('section', {class: 'card chart-card', 'data-chart': key, 'data-points': 0},
      el('header', {class: 'chart-head'}, el('h3', null, title), this.latest),
      this.body);
    this.resizer = new ResizeObserver(() => this.resize());
    this.resizer.observe(this.body);
  }

  // Shows `chart` ({x, series}); null shows `emptyText` instead.
  update(chart, emptyText) {
    if (!chart || chart.x.length === 0) {
      this.destroyPlot();
      this.node.setAttribute('data-points', '0');
      this.node.removeAttribute('data-y-max');
      this.latest.textContent = '';
      replace(this.body, el('div', {class: 'chart-empty'}, emptyText));
      return;
    }
    const data = [chart.x, ...chart.series.map((s) => s.values)];
    const shape = chart.series.map((s) => `${s.kind}:${s.label}`).join('|');
    if (this.plot && shape === this.shape) {
      this.plot.setData(data);
    } else {
      this.destroyPlot();
      this.body.replaceChildren();
      this.shape = shape;
      this.plot = new uPlot(this.options(chart), data, this.body);
    }
    this.node.setAttribute('data-points', String(chart.x.length));
    this.node.setAttribute('data-series', String(chart.series.length));
    this.latest.textContent = this.summary ? this.summary(chart) : '';
  }

  options(chart) {
    const format = formatterFor(this.unit);
    const percent = this.unit === 'percent';
    let used = 0;
    const single = chart.series.filter((s) => s.kind !== 'total').length === 1;
    const hasLimit = chart.series.some((s) => s.kind === 'total');
    const series = chart.series.map((s) => {
      const total = s.kind === 'total';
      const color = total ? TOTAL_COLOR : PALETTE[used++ % PALETTE.length];
      return {
        label: s.label,
        stroke: color,
        width: total ? 1.5 : 2,
        dash: total ? [6, 4] : undefined,
        fill: !total && single ? withAlpha(color, 0.12) : undefined,
        points: {show: false},
        value: (u, v) => (v === null || v === undefined ? '—' : format(v)),
      };
    });
    return {
      width: this.width(),
      height: 220,
      cursor: {drag: {x: false, y: false}, points: {size: 8}},
      legend: {live: true},
      hooks: {
        // Off the plot, the legend shows the newest values rather than dashes.
        setLegend: [(u) => {
          if (u.legend.idx === null || u.legend.idx === undefined) {
            if (u.data[0].length > 0) u.setLegend({idx: u.data[0].length - 1}, false);
          }
        }],
        // The axis's top, for tests and for people reading the page's markup.
        setScale: [(u, key) => {
          if (key === 'y') this.node.setAttribute('data-y-max', String(u.scales.y.max));
        }],
      },
      scales: {
        x: {time: true, range: (u, min, max) => [Math.min(min, max - MIN_SPAN_SECONDS), max]},
        y: {
          range: (u, min, max) => (percent ? [0, Math.max(100, Math.ceil(max / 10) * 10)]
                                           : [0, byteAxisTop(max, hasLimit)]),
        },
      },
      axes: [
        {font: FONT, stroke: '#64748b', grid: {stroke: '#eef2f7'}, ticks: {stroke: '#e2e8f0'},
         incrs: TIME_INCRS, values: timeTicks, space: 60},
        {
          font: FONT,
          stroke: '#64748b',
          size: 64,
          incrs: percent ? undefined : BYTE_INCRS,
          grid: {stroke: '#eef2f7'},
          ticks: {stroke: '#e2e8f0'},
          values: (u, ticks) => ticks.map((t) => format(t)),
        },
      ],
      series: [
        {
          label: 'Time',
          value: (u, v) => (v === null || v === undefined ? '—' : formatDateTime(v * 1000)),
        },
        ...series,
      ],
    };
  }

  width() {
    return Math.max(240, Math.floor(this.body.getBoundingClientRect().width) || 480);
  }

  resize() {
    // Only on a new width: resizing the plot must not feed the observer another change.
    const width = this.width();
    if (!this.plot || width === this.plot.width) return;
    this.plot.setSize({width, height: 220});
  }

  destroyPlot() {
    if (this.plot) this.plot.destroy();
    this.plot = null;
    this.shape = '';
  }

  destroy() {
    this.resizer.disconnect();
    this.destroyPlot();
  }
}
