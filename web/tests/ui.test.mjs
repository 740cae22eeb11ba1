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

  // Finished runs first (one done, one failed), then one that runs on both GPUs until stopped.
  await server.submit("type: task\nname: hello\ncommands: ['echo hello from fleetwatch']\n");
  await server.submit("type: task\nname: oops\ncommands: ['echo about to fail', 'exit 3']\n");
  await server.waitForRun('hello', (r) => r.status === 'done', 'to be done');
  await server.waitForRun('oops', (r) => r.status === 'failed', 'to fail');
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
    expectEqual(names, ['queued', 'train', 'oops', 'hello'], 'runs in the table');
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
    await waitUntil(async () => (await rows()) === 4, 10000, 'all runs again');
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
    expectEqual(await page.getAttribute('[data-chart=memory]', 'data-series'), '2',
                'memory series (working set and the total)');
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
      const box = await page.locator(`[data-chart=${chart}] .u-over`).boundingBox();
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
    expect(/^\d+(\.\d)?[KMGT]?B$/.test(memory[1][1]) && /B$/.test(memory[2][1]),
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
        for (const instance of fleet.instances) instance.unreachable = true;
      }
      await route.fulfill({response, json: body});
    });
    await page.click('[data-nav=runs]');
    await page.click('[data-nav=fleets]');
    await page.locator('tr.unreachable[data-instance]').waitFor();
    const badges = await page.locator('tr.unreachable .badge').allTextContents();
    expectEqual(badges, ['busy', 'unreachable'], 'badges of an unreachable instance');
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
    expect(job[4] === 'terminated' && job[5] === 'terminated by user',
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
    const noSideScroll = async (what) => {
      const [scroll, width] = await page.evaluate(
          () => [document.documentElement.scrollWidth, window.innerWidth]);
      expect(scroll <= width, `${what} scrolls sideways at 390 px (${scroll} > ${width})`);
    };
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
