// The web UI end to end: a real `fleetwatch server` (temporary data dir, its embedded local
// fleet with two fake-NVML GPUs, one of them named like an XSS attack), real runs, and headless
// Chromium driven by playwright-core. Run by ctest as ui_browser_test; by hand:
//
//   FLEETWATCH_BINARY=build/ui/fleetwatch FAKE_NVML_LIBRARY=build/ui/tests/agent/libfake_nvml.so \
//   FLEETWATCH_WEB_NPM_DIR=build/ui/web node web/tests/ui.test.mjs
//
// Screenshots of every page go to $FLEETWATCH_UI_ARTIFACTS. Without Chromium, playwright-core or
// the binaries the test fails and says what is missing: it never skips.
import {spawn} from 'node:child_process';
import fs from 'node:fs';
import {createRequire} from 'node:module';
import os from 'node:os';
import path from 'node:path';
import {fileURLToPath} from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const env = process.env;
const ADMIN_TOKEN = 'ui-test-admin-token-0123456789abcdef';
const HOSTILE_GPU = '<img src=x onerror=alert(1)>';
// Quotes, a newline and markup: shown as these characters wherever the page shows them.
const HOSTILE_TEXT =
    `"quoted" 'single' <script>alert(2)</script>\nnext <img src=x onerror=alert(3)>`;
const MIB = 1024 * 1024;
// The widths every behaviour is checked at: a laptop and a phone.
const WIDTHS = [{width: 1280, height: 800}, {width: 390, height: 844}];
const GPUS = [
  // name|uuid|memory_total|memory_used|utilization, read by the fake NVML at every call
  `NVIDIA H100 80GB HBM3|GPU-ui-0|85899345920|21474836480|35`,
  `${HOSTILE_GPU}|GPU-ui-1|85899345920|42949672960|70`,
];
const artifacts = env.FLEETWATCH_UI_ARTIFACTS || path.join(os.tmpdir(), 'fleetwatch-ui-artifacts');
const chromiumPath = env.CHROMIUM_PATH || '/usr/bin/chromium';

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exit(1);
}

function need(name) {
  const value = env[name];
  if (!value) fail(`$${name} is not set (ctest sets it; see the comment at the top of this file)`);
  if (!fs.existsSync(value)) fail(`$${name}=${value} does not exist: build it first`);
  return value;
}

const binary = need('FLEETWATCH_BINARY');
const fakeNvml = need('FAKE_NVML_LIBRARY');
const npmDir = path.resolve(env.FLEETWATCH_WEB_NPM_DIR || path.join(here, '..'));
if (!fs.existsSync(chromiumPath)) {
  fail(`Chromium is not at ${chromiumPath}: run scripts/install-deps.sh (Debian package ` +
       `'chromium') or set $CHROMIUM_PATH`);
}
let chromium;
try {
  ({chromium} = createRequire(path.join(npmDir, 'package.json'))('playwright-core'));
} catch (e) {
  fail(`playwright-core is not installed under ${npmDir}/node_modules (the build's npm ci puts ` +
       `it there; set $FLEETWATCH_WEB_NPM_DIR): ${e.message}`);
}
fs.mkdirSync(artifacts, {recursive: true});
fs.rmSync(path.join(artifacts, 'FAILED.png'), {force: true});  // from an earlier run

// --- the server under test -------------------------------------------------------------------

class Server {
  constructor() {
    this.dir = fs.mkdtempSync(path.join(os.tmpdir(), 'fleetwatch-ui-'));
    this.output = '';
  }

  async start() {
    const gpus = path.join(this.dir, 'gpus.txt');
    fs.writeFileSync(gpus, GPUS.join('\n') + '\n');
    fs.mkdirSync(path.join(this.dir, 'home'));
    const childEnv = {
      ...env,
      HOME: path.join(this.dir, 'home'),
      FLEETWATCH_SERVER_ADMIN_TOKEN: ADMIN_TOKEN,
      FLEETWATCH_POLL_INTERVAL_MS: '200',
      FLEETWATCH_METRICS_INTERVAL_SECONDS: '1',
      FLEETWATCH_STOP_GRACE_SECONDS: '2',
      FLEETWATCH_NVML_LIBRARY: fakeNvml,  // inherited by the embedded local agent
      FAKE_NVML_FILE: gpus,
    };
    this.child = spawn(binary, ['server', '--host', '127.0.0.1', '--port', '0', '--data-dir',
                                path.join(this.dir, 'data')],
                       {env: childEnv, stdio: ['ignore', 'pipe', 'pipe']});
    this.exited = new Promise((resolve) => this.child.on('exit', (code, signal) => {
      this.exitCode = code ?? 128;
      resolve(signal ? `signal ${signal}` : `exit ${code}`);
    }));
    const listening = new Promise((resolve, reject) => {
      const collect = (chunk) => {
        this.output += chunk.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)\r?\n/.exec(this.output);
        if (m) resolve(m[1]);
      };
      this.child.stdout.on('data', collect);
      this.child.stderr.on('data', collect);
      this.exited.then((how) => reject(new Error(`the server ended (${how}) before listening`)));
    });
    this.url = await withTimeout(listening, 60000, 'the server to listen');
  }

  async api(method, route, body, contentType = 'application/json') {
    const reply = await fetch(this.url + route, {
      method,
      headers: {'Authorization': `Bearer ${ADMIN_TOKEN}`,
                ...(body !== undefined ? {'Content-Type': contentType} : {})},
      body,
    });
    const text = await reply.text();
    if (!reply.ok) throw new Error(`${method} ${route}: HTTP ${reply.status} ${text}`);
    return text ? JSON.parse(text) : {};
  }

  submit(yaml) {
    return this.api('POST', '/api/project/main/runs', yaml, 'application/yaml');
  }

  // The job-metrics reply of a run's first job as {name: values (newest first)}.
  async jobMetrics(run) {
    const {metrics} = await this.api('GET', `/api/project/main/metrics/job/${run}?limit=360`);
    return Object.fromEntries(metrics.map((m) => [m.name, m.values]));
  }

  async waitForRun(name, done, what, seconds = 60) {
    let last = null;
    await waitUntil(async () => {
      last = await this.api('GET', `/api/project/main/runs/${name}`);
      return done(last);
    }, seconds * 1000, `run ${name} ${what} (last status: ${last && last.status})`);
    return last;
  }

  async stop() {
    if (!this.child || this.exitCode !== undefined) return;
    this.child.kill('SIGTERM');  // a graceful stop also stops the local agent and its jobs
    const ended = await Promise.race([this.exited, sleep(20000).then(() => null)]);
    if (ended === null) this.child.kill('SIGKILL');
  }

  cleanUp() {
    fs.rmSync(this.dir, {recursive: true, force: true});
  }
}

// --- helpers -----------------------------------------------------------------------------------

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

async function withTimeout(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(
        () => reject(new Error(`timed out after ${ms / 1000} s waiting for ${what}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

async function waitUntil(check, ms, what) {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) {
      throw new Error(`timed out after ${ms / 1000} s waiting for ${what}`);
    }
    await sleep(200);
  }
}

function expect(condition, message) {
  if (!condition) throw new Error(message);
}

function expectEqual(actual, expected, what) {
  const a = JSON.stringify(actual);
  const e = JSON.stringify(expected);
  if (a !== e) throw new Error(`${what}: expected ${e}, got ${a}`);
}

// --- the test ----------------------------------------------------------------------------------

const server = new Server();
let browser = null;
let page = null;
const problems = [];  // dialogs, page errors, CSP violations: each one fails the test
const consoleLines = [];
let currentStep = '';

async function screenshot(name) {
  const file = path.join(artifacts, `${name}.png`);
  await page.screenshot({path: file, fullPage: true});
  console.log(`  screenshot: ${file}`);
}

async function step(name, body) {
  currentStep = name;
  const started = Date.now();
  await body();
  if (problems.length) throw new Error(problems.join('\n'));
  console.log(`ok - ${name} (${((Date.now() - started) / 1000).toFixed(1)} s)`);
}

// Runs `body(width)` at each of WIDTHS, then returns to the first.
async function atEachWidth(body) {
  for (const size of WIDTHS) {
    await page.setViewportSize(size);
    await body(size.width);
  }
  await page.setViewportSize(WIDTHS[0]);
}

async function noSideScroll(what) {
  const [scroll, width] = await page.evaluate(
      () => [document.documentElement.scrollWidth, window.innerWidth]);
  expect(scroll <= width, `${what} scrolls sideways at ${width} px (${scroll} > ${width})`);
}

async function chartPoints(chart) {
  return Number(await page.getAttribute(`[data-chart=${chart}]`, 'data-points'));
}

// The status shown in the runs table for `run`, or null.
function runRowStatus(run) {
  return page.locator(`[data-test=runs-table] tr[data-run="${run}"] .badge`).first()
      .textContent({timeout: 1000}).catch(() => null);
}

async function main() {
  await server.start();
  console.log(`server at ${server.url}`);
  const base = server.url;

  // The local fleet's instance knows its two fake GPUs before GPU runs can be placed.
  await waitUntil(async () => {
    const {items} = await server.api('GET', '/api/project/main/instances');
    return items.some((i) => i.resources && i.resources.gpus && i.resources.gpus.length === 2);
  }, 60000, 'the local instance to report its two GPUs');

  // Finished runs first (a CPU-only one with a memory limit and hostile text in its
  // configuration, one done, one failed), then one that runs on both GPUs until stopped.
  await server.api('POST', '/api/project/main/runs', JSON.stringify({
    type: 'task',
    name: 'limited',
    commands: [`echo ${JSON.stringify(HOSTILE_TEXT)}`, 'sleep 5'],
    env: {NOTE: HOSTILE_TEXT},
    resources: {cpu: 1, memory: '256MB'},
  }));
  await server.submit("type: task\nname: hello\ncommands: ['echo hello from fleetwatch']\n");
  await server.submit("type: task\nname: oops\ncommands: ['echo about to fail', 'exit 3']\n");
  await server.waitForRun('hello', (r) => r.status === 'done', 'to be done');
  await server.waitForRun('oops', (r) => r.status === 'failed', 'to fail');
  await server.waitForRun('limited', (r) => r.status === 'done', 'to be done');
  await server.submit([
    'type: task',
    'name: train',
    'commands:',
    "  - 'for e in 1 2 3; do echo \"epoch $e/3: loss 0.$((9 - e))\"; done'",
    "  - 'timeout 600 sh -c \"while :; do :; done\"'",
    'resources:',
    '  cpu: 1',
    '  gpu: 2',
    '',
  ].join('\n'));
  await server.waitForRun('train', (r) => r.status === 'running', 'to run');
  // Waits for the GPUs that train holds: its job has not started, so it has no metrics.
  await server.submit("type: task\nname: queued\ncommands: ['sleep 600']\nresources:\n  gpu: 2\n");
  await sleep(1000);
  const queued = await server.waitForRun('queued', (r) => r.jobs[0].instance_name === null,
                                         'to wait for GPUs');
  await server.api('POST', '/api/projects', JSON.stringify({name: 'research'}));

  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'],
  });
  const context = await browser.newContext({viewport: {width: 1280, height: 800}});
  page = await context.newPage();
  page.setDefaultTimeout(15000);
  page.on('dialog', async (dialog) => {
    problems.push(`a ${dialog.type()} dialog opened ("${dialog.message()}"): markup ran`);
    await dialog.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.push(`uncaught error in the page: ${e.message}`));
  page.on('console', (m) => {
    consoleLines.push(`${m.type()}: ${m.text()}`);
    if (/Content Security Policy|Refused to/i.test(m.text())) {
      problems.push(`CSP violation: ${m.text()}`);
    }
  });

  await step('the page and its assets come with strict security headers', async () => {
    const reply = await fetch(base + '/');
    expectEqual(reply.status, 200, 'GET / status');
    const csp = reply.headers.get('content-security-policy') || '';
    expect(csp.includes("script-src 'self'") && !csp.includes('unsafe-inline'), `CSP: ${csp}`);
    expectEqual(reply.headers.get('x-content-type-options'), 'nosniff', 'X-Content-Type-Options');
    const js = await fetch(base + '/assets/js/main.js');
    expectEqual(js.headers.get('content-type'), 'text/javascript; charset=utf-8', 'main.js type');
    const again = await fetch(base + '/assets/js/main.js',
                              {headers: {'If-None-Match': js.headers.get('etag')}});
    expectEqual(again.status, 304, 'revalidation with the ETag');
  });

  await step('a wrong token shows a readable error and is not kept', async () => {
    await page.goto(base + '/');
    await page.fill('[data-test=token]', 'not-a-valid-token');
    await page.click('button[type=submit]');
    const error = page.locator('[data-test=login-error]');
    await error.waitFor({state: 'visible'});
    const text = await error.textContent();
    expect(/token was not accepted/i.test(text) && text.includes('HTTP 401'),
           `the sign-in error reads "${text}"`);
    expectEqual(await page.evaluate(() => localStorage.getItem('fleetwatch.token')), null,
                'stored token after a failed sign-in');
    await screenshot('01-sign-in-wrong-token');
  });

  await step('signing in shows the runs, newest first, with coloured statuses', async () => {
    await page.fill('[data-test=token]', ADMIN_TOKEN);
    await page.click('button[type=submit]');
    await page.locator('[data-test=runs-table]').waitFor();
    expectEqual(await page.evaluate(() => localStorage.getItem('fleetwatch.token')), ADMIN_TOKEN,
                'stored token');
    expectEqual(await page.textContent('[data-test=user-name]'), 'admin', 'user shown');
    expect(page.url().endsWith('#/p/main/runs'), `URL after sign-in: ${page.url()}`);
    const names = await page.locator('[data-test=runs-table] tbody tr').evaluateAll(
        (rows) => rows.map((r) => r.getAttribute('data-run')));
    expectEqual(names, ['queued', 'train', 'oops', 'hello', 'limited'], 'runs in the table');
    expectEqual(await runRowStatus('hello'), 'done', 'status of hello');
    expectEqual(await runRowStatus('oops'), 'failed', 'status of oops');
    expectEqual(await runRowStatus('train'), 'running', 'status of train');
    expectEqual(await runRowStatus('queued'), queued.status, 'status of queued');
    const colours = await page.locator('[data-test=runs-table] .badge').evaluateAll(
        (badges) => badges.map((b) => getComputedStyle(b).backgroundColor));
    expectEqual(new Set(colours).size, 4, `distinct colours of ${queued.status}, running, ` +
                                          'failed and done');
    const cells = await page.locator('[data-test=runs-table] tr[data-run=train] td')
                      .allTextContents();
    expect(cells.includes('2') && cells.includes('task') && cells.includes('admin'),
           `the train row reads ${JSON.stringify(cells)}`);
    await page.selectOption('[data-test=status-filter]', 'failed');
    const rows = () => page.locator('[data-test=runs-table] tbody tr').count();
    await waitUntil(async () => (await rows()) === 1, 10000, 'the status filter');
    expectEqual(await runRowStatus('oops'), 'failed', 'the only failed run');
    await page.selectOption('[data-test=status-filter]', '');
    await waitUntil(async () => (await rows()) === 5, 10000, 'all runs again');
    await screenshot('02-runs');
  });

  await step('the project switcher lists the projects and switches between them', async () => {
    const options = await page.locator('[data-test=project-select] option').allTextContents();
    expectEqual(options, ['main', 'research'], 'projects in the switcher');
    await page.selectOption('[data-test=project-select]', 'research');
    await page.locator('.empty h2:text-is("No runs yet")').waitFor();
    expect(page.url().endsWith('#/p/research/runs'), `URL in project research: ${page.url()}`);
    await page.selectOption('[data-test=project-select]', 'main');
    await page.locator('[data-test=runs-table] tr[data-run=train]').waitFor();
  });

  await step('a run page shows its jobs and the log tail', async () => {
    await page.click('[data-test=runs-table] a:text-is("train")');
    await page.locator('[data-test=jobs-table]').waitFor();
    expect(page.url().endsWith('#/p/main/runs/train'), `URL of the run: ${page.url()}`);
    expectEqual(await page.textContent('[data-test=run-status] .badge'), 'running', 'run status');
    const job = await page.locator('[data-test=jobs-table] tbody tr').first().locator('td')
                    .allTextContents();
    expect(job[0] === 'train-0-0' && job[3].startsWith('local') && job[4] === 'running',
           `the job row reads ${JSON.stringify(job)}`);
    await waitUntil(async () => (await page.textContent('[data-test=log]')).includes('epoch 3/3'),
                    15000, 'the log tail');
    await screenshot('03-run-overview');
  });

  await step('a run page has a Summary, its notes shown as text', async () => {
    await waitUntil(async () => (await page.locator('[data-test=summary-jobs] tbody tr').count()) > 0,
                    15000, 'the summary table');
    const totals = await page.locator('[data-test=summary-totals] .fact-label').allTextContents();
    expectEqual(totals, ['GPU energy', 'Carbon (estimate)', 'Cost'], 'the summary totals');
    const row = await page.locator('[data-test=summary-jobs] tbody tr').first().locator('td')
                    .allTextContents();
    expectEqual(row[0], 'train-0-0', 'the summary job');
    // A note with markup (answered by the page's own request, the server's reply amended).
    const summaryReply = /\/api\/project\/main\/runs\/train\/summary$/;
    await page.route(summaryReply, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      body.jobs[0].notes = [{rule: 'cpu_bound', text: HOSTILE_TEXT}];
      await route.fulfill({response, json: body});
    });
    await page.reload();
    const note = page.locator('[data-test=summary-notes] li').first();
    await note.waitFor();
    expectEqual(await note.textContent(), `train-0-0: ${HOSTILE_TEXT}`, 'the note as text');
    expectEqual(await note.evaluate((n) => n.children.length), 0, 'elements in the note');
    await page.unroute(summaryReply);
  });

  await step('the Metrics tab draws four charts with data points', async () => {
    await page.click('[data-tab=metrics]');
    const charts = ['cpu', 'memory', 'gpu-util', 'gpu-memory'];
    await waitUntil(async () => {
      const points = await Promise.all(charts.map((c) => page.getAttribute(
          `[data-chart=${c}]`, 'data-points')));
      return points.every((p) => Number(p) >= 2);
    }, 45000, 'data points in all four charts');
    const titles = await page.locator('.chart-card h3').allTextContents();
    expectEqual(titles, ['CPU utilization %', 'System memory used', 'GPU utilization %',
                         'GPU memory used'], 'chart titles');
    expectEqual(await page.getAttribute('[data-chart=gpu-util]', 'data-series'), '2',
                'GPU utilization series (one per GPU)');
    expectEqual(await page.getAttribute('[data-chart=gpu-memory]', 'data-series'), '3',
                'GPU memory series (two GPUs and the total)');
    expectEqual(await page.getAttribute('[data-chart=memory]', 'data-series'), '1',
                'memory series (the working set: the job has no memory limit)');
    for (const c of charts) {
      expect(await page.locator(`[data-chart=${c}] canvas`).count() === 1, `a canvas in ${c}`);
    }
  });

  await step('hovering a chart shows the values and the time', async () => {
    const legend = (chart) => page.locator(`[data-chart=${chart}] .u-legend .u-series`)
        .evaluateAll((rows) => rows.map((r) => [r.querySelector('.u-label')?.textContent,
                                                r.querySelector('.u-value')?.textContent]));
    // Off the charts the legends show the newest point; over a chart, the point under the
    // cursor (near the left edge: the oldest point, whose time differs from the newest).
    await page.mouse.move(5, 5);
    const newest = (await legend('gpu-util'))[0][1];
    expect(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(newest), `newest time: ${newest}`);
    const hover = async (chart) => {
      const over = page.locator(`[data-chart=${chart}] .u-over`);
      await over.scrollIntoViewIfNeeded();
      const box = await over.boundingBox();
      await page.mouse.move(box.x + box.width * 0.05, box.y + box.height / 2);
    };
    await hover('gpu-util');
    await waitUntil(async () => (await legend('gpu-util'))[0][1] !== newest, 5000,
                    'the legend to follow the cursor');
    const util = await legend('gpu-util');
    expect(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/.test(util[0][1]) && util[0][1] < newest,
           `the time under the cursor: ${util[0][1]} (newest ${newest})`);
    expectEqual(util.slice(1), [['GPU 0', '35%'], ['GPU 1', '70%']], 'GPU utilization on hover');
    await hover('gpu-memory');
    expectEqual((await legend('gpu-memory')).slice(1),
                [['GPU 0', '20GB'], ['GPU 1', '40GB'], ['Total per GPU', '80GB']],
                'GPU memory on hover');
    await hover('cpu');
    const cpu = await legend('cpu');
    expect(/^\d+(\.\d)?%$/.test(cpu[1][1]), `CPU utilization on hover: ${cpu[1][1]}`);
    await hover('memory');
    const memory = await legend('memory');
    expect(/^\d+(\.\d)?[KMGT]?B$/.test(memory[1][1]) && memory.length === 2,
           `memory on hover: ${JSON.stringify(memory)}`);
    await hover('gpu-util');
    await screenshot('04-run-metrics');
  });

  await step('a job without data yet shows empty charts that say why', async () => {
    await page.goto(base + '/#/p/main/runs/queued/metrics');
    await page.locator('[data-chart=cpu] .chart-empty').waitFor();
    const texts = await page.locator('.chart-card .chart-empty').allTextContents();
    expectEqual(texts, new Array(4).fill('No data yet: the job has not started.'),
                'the empty charts');
    expectEqual(await page.locator('.chart-card canvas').count(), 0, 'charts drawn');
    await screenshot('04-run-metrics-empty');
  });

  await step('the memory axis fits the usage without a limit and is the limit with one',
             async () => {
    await atEachWidth(async (width) => {
      // train has no memory limit: its metrics' total is the host's memory, which is not drawn.
      await page.goto(base + '/#/p/main/runs/train/metrics');
      await waitUntil(async () => (await chartPoints('memory')) >= 2 &&
                                  await page.getAttribute('[data-chart=memory]', 'data-y-max'),
                      20000, 'the memory chart of train');
      const top = Number(await page.getAttribute('[data-chart=memory]', 'data-y-max'));
      const metrics = await server.jobMetrics('train');
      const used = Math.max(...metrics.memory_working_set_bytes);
      const host = metrics.memory_total_bytes[0];
      console.log(`  ${width} px: train uses ${used} B of a ${host} B host; the axis ends at ` +
                  `${Math.round(top)} B`);
      expectEqual(await page.getAttribute('[data-chart=memory]', 'data-series'), '1',
                  'memory series without a limit');
      expect(top >= used * 0.8 && top <= used * 2 && top < host / 4,
             `the axis without a limit ends at ${top} B for ${used} B used on a ${host} B host`);
      const summary = await page.textContent('[data-chart=memory] .chart-latest');
      expect(summary.includes('no limit'), `the memory header reads "${summary}"`);
      await noSideScroll('the metrics page');
      await screenshot(`11-memory-no-limit-${width}`);

      // limited asked for 256MB: the limit is a dashed line at the top of the axis.
      await page.goto(base + '/#/p/main/runs/limited/metrics');
      await waitUntil(async () => (await chartPoints('memory')) >= 2 &&
                                  await page.getAttribute('[data-chart=memory]', 'data-y-max'),
                      20000, 'the memory chart of limited');
      const limitTop = Number(await page.getAttribute('[data-chart=memory]', 'data-y-max'));
      expectEqual(await page.getAttribute('[data-chart=memory]', 'data-series'), '2',
                  'memory series with a limit (working set and limit)');
      expect(limitTop >= 256 * MIB && limitTop <= 256 * MIB * 1.2,
             `the axis with a 256MB limit ends at ${limitTop} B`);
      const limitSummary = await page.textContent('[data-chart=memory] .chart-latest');
      expect(limitSummary.endsWith('of 256MB limit'), `the memory header reads "${limitSummary}"`);
      await screenshot(`11-memory-limit-${width}`);
    });
  });

  await step('a CPU-only job shows one compact "No GPUs" line instead of GPU charts', async () => {
    await atEachWidth(async (width) => {
      await page.goto(base + '/#/p/main/runs/limited/metrics');
      await waitUntil(async () => (await chartPoints('cpu')) >= 2, 20000, 'the CPU chart');
      const line = page.locator('[data-test=no-gpus]');
      expectEqual(await line.count(), 1, '"No GPUs" lines');
      expect(await line.isVisible(), 'the "No GPUs" line is shown');
      expect((await line.textContent()).startsWith('No GPUs'),
             `the line reads "${await line.textContent()}"`);
      const box = await line.boundingBox();
      expect(box.height <= 60, `the "No GPUs" line is ${box.height} px high`);
      for (const chart of ['gpu-util', 'gpu-memory']) {
        expect(!(await page.locator(`[data-chart=${chart}]`).isVisible()), `${chart} is hidden`);
      }
      expectEqual(await page.locator('.chart-card:visible').count(), 2, 'charts shown');
      expectEqual(await page.locator('.chart-empty:visible').count(), 0, 'empty placeholders');
      await noSideScroll('the metrics page of a CPU-only job');
      await screenshot(`12-cpu-only-metrics-${width}`);

      // A GPU job keeps its GPU charts and has no such line.
      await page.goto(base + '/#/p/main/runs/train/metrics');
      await waitUntil(async () => (await chartPoints('gpu-util')) >= 2, 20000, 'GPU charts');
      expect(!(await line.isVisible()), 'no "No GPUs" line for a GPU job');
      expectEqual(await page.locator('.chart-card:visible').count(), 4, 'charts of a GPU job');
    });
  });

  await step('tables scroll sideways inside their cards; the page does not', async () => {
    const wraps = () => page.locator('.table-wrap').evaluateAll((nodes) => nodes.map((w) => ({
      overflow: getComputedStyle(w).overflowX,
      scrolls: w.scrollWidth > w.clientWidth,
    })));
    const pages = [
      ['#/p/main/runs', '[data-test=runs-table]'],
      ['#/p/main/runs/train', '[data-test=jobs-table]'],
      ['#/p/main/fleets', '[data-test=instances-table]'],
    ];
    await atEachWidth(async (width) => {
      for (const [hash, table] of pages) {
        await page.goto(base + '/' + hash);
        await page.locator(table).waitFor();
        await noSideScroll(hash);
        for (const wrap of await wraps()) {
          expectEqual(wrap.overflow, 'auto', `sideways overflow of a table on ${hash}`);
        }
      }
      // The fleets page is open: its table fits a laptop and scrolls on a phone.
      const wrap = page.locator('[data-test=instances-table]').locator('xpath=..');
      const [scrollWidth, clientWidth] = await wrap.evaluate((w) => [w.scrollWidth, w.clientWidth]);
      // Which edges show a shadow for hidden columns (more-left, more-right).
      const edges = () => wrap.evaluate((w) => ['more-left', 'more-right'].filter(
          (c) => w.parentElement.classList.contains(c)));
      if (width >= 1280) {
        expect(scrollWidth <= clientWidth, `the instances table is cut at ${width} px`);
        expectEqual(await edges(), [], 'edges with hidden columns at 1280 px');
        await screenshot(`13-fleets-${width}`);
        return;
      }
      expect(scrollWidth > clientWidth,
             `the instances table fits at ${width} px (${scrollWidth} <= ${clientWidth})`);
      expectEqual(await edges(), ['more-right'], 'edges with hidden columns before scrolling');
      await screenshot(`13-fleets-${width}`);
      const box = await wrap.boundingBox();
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(400, 0);  // a sideways swipe over the table
      await waitUntil(async () => (await wrap.evaluate((w) => w.scrollLeft)) > 0, 5000,
                      'the table to scroll sideways');
      await wrap.evaluate((w) => { w.scrollLeft = w.scrollWidth; });
      const [last, frame] = await Promise.all([
        page.locator('[data-test=instances-table] th').last().boundingBox(),
        wrap.boundingBox(),
      ]);
      expectEqual(await page.locator('[data-test=instances-table] th').last().textContent(),
                  'Running for', 'the last column');
      expect(last.x >= frame.x && last.x + last.width <= frame.x + frame.width + 1,
             `the last column is not reachable: ${JSON.stringify({last, frame})}`);
      expectEqual(await page.evaluate(() => window.scrollX), 0, 'the page scrolled sideways');
      await noSideScroll('the fleets page scrolled to its last column');
      await waitUntil(async () => JSON.stringify(await edges()) === '["more-left"]', 5000,
                      'the shadow to move to the left edge');
      await screenshot(`13-fleets-scrolled-${width}`);

      // The runs page redraws its table every 5 s: a table scrolled sideways stays scrolled.
      await page.goto(base + '/#/p/main/runs');
      const runsWrap = page.locator('[data-test=runs-table]').locator('xpath=..');
      await runsWrap.waitFor();
      const [runsScroll, runsClient] = await runsWrap.evaluate(
          (w) => [w.scrollWidth, w.clientWidth]);
      expect(runsScroll > runsClient, `the runs table fits at ${width} px`);
      await runsWrap.evaluate((w) => { w.scrollLeft = 60; });
      const before = await page.textContent('.freshness');
      await waitUntil(async () => (await page.textContent('.freshness')) !== before, 15000,
                      'a refresh of the runs page');
      expectEqual(await runsWrap.evaluate((w) => w.scrollLeft), 60,
                  'sideways scroll of the runs table after a refresh');
    });
  });

  await step('runs and jobs say why they are in their status, as text', async () => {
    const hostileReason = `waiting: ${HOSTILE_TEXT}`;
    // The server's own words for a failed job: "exit 3" (from status_message, or composed).
    const realReasons = async () => {
      await page.goto(base + '/#/p/main/runs');
      await page.locator('[data-test=runs-table] tr[data-run=oops]').waitFor();
      expectEqual(await page.textContent('tr[data-run=oops] [data-test=status-reason]'),
                  'exit 3', 'the reason of oops in the runs table');
      expectEqual(await page.locator('tr[data-run=hello] [data-test=status-reason]').count(), 0,
                  'a reason for a run that is just done');
      await page.goto(base + '/#/p/main/runs/oops');
      await page.locator('[data-test=jobs-table]').waitFor();
      expectEqual(await page.textContent('[data-test=run-reason]'), 'exit 3', 'reason of oops');
      const job = await page.locator('[data-test=jobs-table] tbody tr').first().locator('td')
                      .allTextContents();
      expectEqual(job[5], 'exit 3', 'the reason of the failed job');
    };
    // A reason with quotes, a newline and markup (answered by the page's own requests, with
    // status_message set on the server's real reply for queued and its job).
    const queuedReplies = (url) => /^\/api\/project\/main\/runs(\/queued)?$/.test(url.pathname);
    await page.route(queuedReplies, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      for (const run of body.items || [body]) {
        if (run.run_name !== 'queued') continue;
        run.status_message = `${run.status} (${hostileReason})`;
        for (const job of run.jobs) job.status_message = `${job.status} (${hostileReason})`;
      }
      await route.fulfill({response, json: body});
    });
    const asText = async (selector, what) => {
      const node = page.locator(selector).first();
      await node.waitFor();
      expectEqual(await node.textContent(), hostileReason, what);
      expectEqual(await node.evaluate((n) => n.children.length), 0, `elements in ${what}`);
      expect((await node.innerText()).includes('\n'), `${what} keeps its line break`);
    };
    await atEachWidth(async (width) => {
      await realReasons();
      await page.goto(base + '/#/p/main/runs');
      await asText('tr[data-run=queued] [data-test=status-reason]', 'the runs table reason');
      await noSideScroll('the runs page with a long reason');
      await screenshot(`14-runs-reasons-${width}`);
      await page.goto(base + '/#/p/main/runs/queued');
      await asText('[data-test=run-reason]', 'the run page reason');
      await asText('[data-test=jobs-table] .reason', 'the job reason');
      expectEqual(await page.locator('body script, img[src=x]').count(), 0,
                  'elements made from a reason');
      await noSideScroll('the run page with a long reason');
      await screenshot(`14-run-reason-${width}`);
    });
    await page.unroute(queuedReplies);
  });

  await step("the run page shows the configuration and requested resources, folded",
             async () => {
    const limited = await server.api('GET', '/api/project/main/runs/limited');
    const resources = () => page.locator('[data-test=resources] .resource').evaluateAll(
        (rows) => rows.map((r) => [r.querySelector('dt').textContent,
                                   r.querySelector('dd').textContent]));
    await atEachWidth(async (width) => {
      await page.goto(base + '/#/p/main/runs/limited');
      const config = page.locator('[data-test=config]');
      await config.waitFor();
      const pre = page.locator('[data-test=configuration]');
      expect(!(await pre.isVisible()), 'the configuration is folded at first');
      // Filled once the run's resources are worked out, which may come after the section.
      await page.waitForFunction(
          () => document.querySelector('[data-test=resources-summary]')?.textContent !== '',
          null, {timeout: 10000}).catch(() => {});
      const summary = await page.textContent('[data-test=resources-summary]');
      expectEqual(summary, 'CPUs: 1 · Memory: 256MB (limit) · GPUs: none', 'the folded summary');
      await page.click('[data-test=config] summary');
      await pre.waitFor({state: 'visible'});
      expectEqual(await resources(), [['CPUs', '1'], ['Memory', '256MB (limit)'],
                                      ['GPUs', 'none']], 'requested resources');
      const text = await pre.textContent();
      expectEqual(text, JSON.stringify(limited.configuration, null, 2), 'the configuration');
      expect(text.includes(JSON.stringify(HOSTILE_TEXT).slice(1, -1)),
             'the hostile command is shown as written');
      expectEqual(await pre.evaluate((n) => n.children.length), 0, 'elements in the configuration');
      expectEqual(await page.locator('body script, img[src=x]').count(), 0,
                  'elements made from the configuration');
      await noSideScroll('the run page with its configuration open');
      await screenshot(`15-run-configuration-${width}`);

      // A running run: its section stays open across the page's refreshes.
      await page.goto(base + '/#/p/main/runs/train');
      await page.locator('[data-test=jobs-table]').waitFor();
      await page.click('[data-test=config] summary');
      await page.locator('[data-test=configuration]').waitFor({state: 'visible'});
      expectEqual(await resources(), [['CPUs', '1'], ['Memory', 'no limit'], ['GPUs', '2']],
                  'requested resources of train');
      const before = await page.textContent('.freshness');
      await waitUntil(async () => (await page.textContent('.freshness')) !== before, 15000,
                      'a refresh of the run page');
      expect(await page.locator('[data-test=configuration]').isVisible(),
             'the configuration stays open across a refresh');
    });
  });

  await step("the run page shows the run's idle GPU share and its cost", async () => {
    // The real reply of train, its idle figures replaced by known ones.
    const trainReplies = (url) => url.pathname === '/api/project/main/runs/train';
    await page.route(trainReplies, async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      expect('gpu_idle_ratio' in body && 'idle_cost' in body,
             `the run API gives the idle share and cost: ${JSON.stringify(body).slice(0, 200)}`);
      body.gpu_idle_ratio = 0.375;
      body.idle_cost = 1.5;
      await route.fulfill({response, json: body});
    });
    await page.goto(base + '/#/p/main/runs/train');
    await page.locator('[data-test=gpu-idle]').waitFor();
    // The page may show the run as it had it until its next refresh.
    await waitUntil(async () => (await page.textContent('[data-test=gpu-idle]')) === '38%', 15000,
                    'the idle GPU share of the replaced reply');
    expectEqual(await page.textContent('[data-test=idle-cost]'), '$1.50', 'the idle cost');
    await page.unroute(trainReplies);
  });

  await step('fleets show instances with GPUs, and a hostile GPU name is only text', async () => {
    await page.click('[data-nav=fleets]');
    await page.locator('[data-test=instances-table]').waitFor();
    const gpus = await page.locator('[data-test=gpu-name] .gpu-name').allTextContents();
    expectEqual(gpus, ['NVIDIA H100 80GB HBM3', HOSTILE_GPU], 'GPU names as shown');
    expectEqual(await page.locator('img[src=x]').count(), 0, 'images made from a GPU name');
    const row = await page.locator('[data-test=instances-table] tbody tr').first().locator('td')
                    .allTextContents();
    expect(row.includes('local') && row.some((c) => c.startsWith('busy')),
           `the instance row reads ${JSON.stringify(row)}`);
    await screenshot('05-fleets');

    // An agent becomes unreachable only after the server's grace period (a minute by default);
    // the page marks instances whose `unreachable` is true (docs/api.md). Shown here by answering
    // the page's fleets request with the server's real reply, its instance marked unreachable.
    await page.route('**/api/project/main/fleets', async (route) => {
      const response = await route.fetch();
      const body = await response.json();
      for (const fleet of body.items) {
        for (const instance of fleet.instances) {
          instance.unreachable = true;
          // GPU health with agent text in its reason: shown as text, never as markup.
          instance.health = {status: 'unhealthy', reason: `GPU 0: cannot be read: ${HOSTILE_GPU}`,
                             last_event: 'XID 79 on GPU 0: GPU has fallen off the bus',
                             last_event_at: '2026-11-30T12:00:00Z', gpus: []};
        }
      }
      await route.fulfill({response, json: body});
    });
    await page.click('[data-nav=runs]');
    await page.click('[data-nav=fleets]');
    await page.locator('tr.unreachable[data-instance]').waitFor();
    const badges = await page.locator('tr.unreachable .badges .badge').allTextContents();
    expectEqual(badges, ['busy', 'unreachable'], 'badges of an unreachable instance');
    expectEqual(await page.locator('tr.unreachable [data-test=health] .badge').textContent(),
                'GPUs unhealthy', 'the health badge');
    expectEqual(await page.locator('tr.unreachable [data-test=health-reason]').textContent(),
                `GPU 0: cannot be read: ${HOSTILE_GPU}`, 'the health reason, as text');
    expectEqual(await page.locator('img[src=x]').count(), 0, 'images made from a health reason');
    const tint = await page.locator('tr.unreachable').evaluate(
        (row) => getComputedStyle(row).backgroundColor);
    expect(tint !== 'rgba(0, 0, 0, 0)', 'an unreachable row is tinted');
    const [unreachable, failed] = await page.evaluate(() => {
      const probe = document.createElement('span');
      probe.className = 'badge tone-bad';
      document.body.append(probe);
      const colours = [document.querySelector('tr.unreachable .badge[data-status=unreachable]'),
                       probe].map((b) => getComputedStyle(b).color);
      probe.remove();
      return colours;
    });
    expectEqual(unreachable, failed, 'the unreachable label has the colour of failures');
    await screenshot('05-fleets-unreachable');
    await page.unroute('**/api/project/main/fleets');
  });

  await step("a stopped run's status updates without a reload", async () => {
    await page.click('[data-nav=runs]');
    await page.click('[data-test=runs-table] a:text-is("train")');
    await page.locator('[data-test=jobs-table]').waitFor();
    await page.evaluate(() => { window.__sameDocument = true; });
    await server.api('POST', '/api/project/main/runs/train/stop', '{}');
    await waitUntil(async () => (await page.textContent('[data-test=run-status] .badge')) ===
                                'terminated', 30000, 'the run page to show "terminated"');
    expectEqual(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
    const job = await page.locator('[data-test=jobs-table] tbody tr').first().locator('td')
                    .allTextContents();
    // The server's status_message names who stopped it (the admin here).
    expect(job[4] === 'terminated' && job[5] === 'stopped by admin',
           `the stopped job reads ${JSON.stringify(job)}`);
    await screenshot('06-run-stopped');
    await page.click('.crumbs a');
    await page.locator('[data-test=runs-table]').waitFor();
    expectEqual(await runRowStatus('train'), 'terminated', 'status in the runs table');
    expectEqual(await page.evaluate(() => window.__sameDocument), true, 'no reload happened');
  });

  await step('API errors are readable messages, never a blank page', async () => {
    await page.goto(base + '/#/p/main/runs/no-such-run');
    const error = page.locator('[data-test=error]');
    await error.waitFor({state: 'visible'});
    const text = await error.textContent();
    expect(text.includes('Could not load run no-such-run') && text.includes('HTTP 404'),
           `the error reads "${text}"`);
    expectEqual(await page.locator('.tab-panel').isVisible(), false, 'tabs of a missing run');
    await screenshot('07-error-no-such-run');
    await page.goto(base + '/#/p/no-such-project/fleets');
    await page.locator('[data-test=error]').waitFor({state: 'visible'});
    expect((await page.textContent('[data-test=error]')).includes('HTTP 404'),
           'an unknown project is a readable error');
    await screenshot('07-error-no-such-project');
  });

  await step('a narrow window keeps every page usable', async () => {
    await page.setViewportSize({width: 390, height: 844});
    await page.goto(base + '/#/p/main/runs');
    await page.locator('[data-test=runs-table]').waitFor();
    await noSideScroll('the runs page');
    await screenshot('08-runs-narrow');
    await page.goto(base + '/#/p/main/runs/train/metrics');
    await waitUntil(async () => Number(await page.getAttribute('[data-chart=gpu-util]',
                                                                'data-points')) >= 2,
                    20000, 'the charts at 390 px');
    await noSideScroll('the metrics page');
    const widths = await page.locator('.chart-card').evaluateAll(
        (cards) => cards.map((c) => c.getBoundingClientRect().width));
    expect(widths.every((w) => w <= 390), `chart widths at 390 px: ${widths}`);
    await screenshot('09-run-metrics-narrow');
    await page.goto(base + '/#/p/main/fleets');
    await page.locator('[data-test=instances-table]').waitFor();
    await noSideScroll('the fleets page');
    await screenshot('10-fleets-narrow');
    await page.setViewportSize({width: 1280, height: 800});
  });

  await step('signing out forgets the token', async () => {
    await page.click('[data-test=sign-out]');
    await page.locator('[data-test=token]').waitFor();
    expectEqual(await page.evaluate(() => localStorage.getItem('fleetwatch.token')), null,
                'stored token after signing out');
    await page.reload();
    await page.locator('[data-test=token]').waitFor();
  });
}

const overall = setTimeout(() => {
  console.error(`FAIL: the whole test took over 240 s (in step "${currentStep}")`);
  process.exit(1);
}, 240000);

let failed = false;
try {
  await main();
} catch (e) {
  failed = true;
  console.error(`FAIL - ${currentStep}: ${e.stack || e}`);
  if (page) await screenshot('FAILED').catch(() => {});
  console.error('--- browser console ---\n' + consoleLines.slice(-40).join('\n'));
  console.error('--- server output (tail) ---\n' + server.output.slice(-6000));
} finally {
  if (browser) await browser.close().catch(() => {});
  await server.stop();
  server.cleanUp();
  clearTimeout(overall);
}
if (!failed && server.exitCode !== 0) {
  failed = true;
  console.error(`FAIL: the server did not stop cleanly (exit ${server.exitCode})\n` +
                server.output.slice(-6000));
}
console.log(failed ? 'FAILED' : 'PASSED');
process.exit(failed ? 1 : 0);
