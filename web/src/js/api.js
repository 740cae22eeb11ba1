// The fleetwatch REST API (docs/api.md), called exactly as the CLI calls it: a bearer token on
// every request, JSON bodies, errors as {"error": {"code", "message"}}.

// An error a person can read: `message` is a sentence, `status` the HTTP status (0 when the
// server could not be reached), `code` the API's error code.
export class ApiError extends Error {
  constructor(message, status, code) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.code = code;
  }
}

const HINTS = {
  401: 'The token was not accepted',
  403: 'Not allowed',
  404: 'Not found',
  409: 'Conflict',
  413: 'Too large',
  500: 'The server failed',
  503: 'The server is unavailable',
};

// The ApiError for a non-2xx reply: the API's own message when the body is its error JSON,
// otherwise the HTTP status in words (a proxy's HTML page is never shown).
export function errorFromReply(status, bodyText) {
  let code = '';
  let message = '';
  try {
    const body = JSON.parse(bodyText);
    if (body && body.error && typeof body.error === 'object') {
      code = typeof body.error.code === 'string' ? body.error.code : '';
      message = typeof body.error.message === 'string' ? body.error.message : '';
    }
  } catch {
    // Not JSON: fall through to the generic text.
  }
  const hint = HINTS[status] || `The request failed`;
  const detail = message ? `: ${message}` : '';
  return new ApiError(`${hint} (HTTP ${status}${code ? ' ' + code : ''})${detail}`, status, code);
}

export function projectPath(project, suffix = '') {
  return `/api/project/${encodeURIComponent(project)}${suffix}`;
}

export function query(params) {
  const parts = [];
  for (const [key, value] of Object.entries(params)) {
    if (value === null || value === undefined || value === '') continue;
    parts.push(`${encodeURIComponent(key)}=${encodeURIComponent(String(value))}`);
  }
  return parts.length ? '?' + parts.join('&') : '';
}

export class Api {
  // `token`: the bearer token; `fetchImpl`: window.fetch (tests may pass another).
  constructor(token, fetchImpl = (...args) => fetch(...args)) {
    this.token = token;
    this.fetch = fetchImpl;
  }

  async send(method, path, {body, accept = 'application/json'} = {}) {
    const headers = {'Authorization': `Bearer ${this.token}`, 'Accept': accept};
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    let reply;
    try {
      reply = await this.fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: 'no-store',
        credentials: 'omit',
      });
    } catch (e) {
      throw new ApiError(`Cannot reach the fleetwatch server (${e.message || e})`, 0,
                         'unavailable');
    }
    if (!reply.ok) throw errorFromReply(reply.status, await reply.text().catch(() => ''));
    return reply;
  }

  async json(method, path, body) {
    const reply = await this.send(method, path, {body});
    const text = await reply.text();
    if (!text) return {};
    try {
      return JSON.parse(text);
    } catch {
      throw new ApiError(`The server sent a reply that is not JSON (HTTP ${reply.status})`,
                         reply.status, 'bad_reply');
    }
  }

  get(path) {
    return this.json('GET', path);
  }

  me() {
    return this.get('/api/users/me');
  }

  projects() {
    return this.get('/api/projects').then((r) => r.items || []);
  }

  runs(project, {statuses = [], limit = 100} = {}) {
    return this.get(projectPath(project, '/runs') +
                    query({status: statuses.join(','), limit})).then((r) => r.items || []);
  }

  run(project, name) {
    return this.get(projectPath(project, `/runs/${encodeURIComponent(name)}`));
  }

  stopRun(project, name) {
    return this.json('POST', projectPath(project, `/runs/${encodeURIComponent(name)}/stop`), {});
  }

  fleets(project) {
    return this.get(projectPath(project, '/fleets')).then((r) => r.items || []);
  }

  // A run's summary: each job's figures and notes (docs/api.md "Run summary").
  runSummary(project, run) {
    return this.get(projectPath(project, `/runs/${encodeURIComponent(run)}/summary`));
  }

  jobMetrics(project, run, {runId, jobNum, replicaNum, limit}) {
    return this.get(projectPath(project, `/metrics/job/${encodeURIComponent(run)}`) +
                    query({run_id: runId, job_num: jobNum, replica_num: replicaNum, limit}))
        .then((r) => r.metrics || []);
  }

  // A piece of a job's log from byte `offset`: {bytes (Uint8Array), size (bytes so far),
  // jobStatus}.
  async logs(project, run, {jobNum, replicaNum, offset}) {
    const reply = await this.send(
        'GET',
        projectPath(project, `/runs/${encodeURIComponent(run)}/logs`) +
            query({job_num: jobNum, replica_num: replicaNum, offset}),
        {accept: 'text/plain'});
    const bytes = new Uint8Array(await reply.arrayBuffer());
    const size = Number(reply.headers.get('X-Log-Size'));
    return {
      bytes,
      size: Number.isFinite(size) ? size : offset + bytes.length,
      jobStatus: reply.headers.get('X-Job-Status') || '',
    };
  }
}
