// The web UI: a sign-in page and, once signed in, a shell (header, project switcher) around one
// view at a time, picked by the URL's hash:
//   #/p/{project}/runs                 the runs table
//   #/p/{project}/runs/{run}[/metrics] a run: jobs and logs, or its metrics charts
//   #/p/{project}/fleets               fleets and instances
// Everything comes from the public REST API with the token kept in localStorage.
import {Api, ApiError} from './api.js';
import {el, replace} from './dom.js';
import {mountLogin} from './views/login.js';
import {mountRuns} from './views/runs.js';
import {mountRun} from './views/run.js';
import {mountFleets} from './views/fleets.js';

const TOKEN_KEY = 'fleetwatch.token';
const PROJECT_KEY = 'fleetwatch.project';

const root = document.getElementById('app');
const state = {api: null, user: null, projects: [], view: null, shell: null};

function href(project, ...parts) {
  return '#/p/' + [project, ...parts].map(encodeURIComponent).join('/');
}

function parseHash() {
  const parts = location.hash.replace(/^#\/?/, '').split('/').filter((p) => p !== '');
  let decoded;
  try {
    decoded = parts.map(decodeURIComponent);
  } catch {
    decoded = [];
  }
  if (decoded[0] !== 'p' || decoded.length < 3) return {project: decoded[1] || null, page: null};
  return {project: decoded[1], page: decoded[2], rest: decoded.slice(3)};
}

function storedToken() {
  try {
    return localStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

function signOut(message) {
  try {
    localStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage may be disabled; nothing is kept then.
  }
  state.api = null;
  state.user = null;
  state.shell = null;
  unmountView();
  showLogin(message);
}

function unmountView() {
  if (state.view && state.view.destroy) state.view.destroy();
  state.view = null;
}

function showLogin(message) {
  unmountView();
  document.title = 'Sign in · fleetwatch';
  state.view = mountLogin(root, {
    message,
    async signIn(token) {
      const api = new Api(token);
      const user = await api.me();  // throws ApiError: the login view shows it
      const projects = await api.projects();
      try {
        localStorage.setItem(TOKEN_KEY, token);
      } catch {
        // Without storage the session lasts until the page is closed.
      }
      start(api, user, projects);
    },
  });
}

function start(api, user, projects) {
  state.api = api;
  state.user = user;
  state.projects = projects;
  state.shell = null;
  route();
}

function defaultProject() {
  let saved = null;
  try {
    saved = localStorage.getItem(PROJECT_KEY);
  } catch {
    // Fine: the first project then.
  }
  const names = state.projects.map((p) => p.name);
  if (saved && names.includes(saved)) return saved;
  return names.includes('main') ? 'main' : names[0] || null;
}

// The header with navigation, project switcher, user and sign-out; built once per sign-in.
function buildShell() {
  const nav = {
    runs: el('a', {class: 'nav-link', 'data-nav': 'runs'}, 'Runs'),
    fleets: el('a', {class: 'nav-link', 'data-nav': 'fleets'}, 'Fleets'),
  };
  const select = el('select', {class: 'project-select', 'aria-label': 'Project',
                               'data-test': 'project-select'});
  select.addEventListener('change', () => {
    const {page} = parseHash();
    location.hash = href(select.value, page === 'fleets' ? 'fleets' : 'runs');
  });
  const main = el('main', {class: 'content', id: 'content'});
  const header = el('header', {class: 'topbar'},
    el('div', {class: 'topbar-inner'},
      el('a', {class: 'brand', href: '#/'},
        el('img', {src: '/assets/favicon.svg', alt: '', width: 22, height: 22}),
        el('span', null, 'fleetwatch')),
      el('nav', {class: 'nav'}, nav.runs, nav.fleets),
      el('div', {class: 'topbar-right'},
        el('label', {class: 'project-label'}, el('span', {class: 'muted'}, 'Project'), select),
        el('span', {class: 'user', title: 'Signed in user', 'data-test': 'user-name'},
           state.user.name),
        el('button', {class: 'button ghost', type: 'button', 'data-test': 'sign-out',
                      onclick: () => signOut()}, 'Sign out'))));
  replace(root, header, main);
  state.shell = {nav, select, main};
}

function updateShell(project, page) {
  const {nav, select} = state.shell;
  const names = state.projects.map((p) => p.name);
  if (!names.includes(project)) names.push(project);
  replace(select, names.map((n) => el('option', {value: n}, n)));
  select.value = project;
  nav.runs.setAttribute('href', href(project, 'runs'));
  nav.fleets.setAttribute('href', href(project, 'fleets'));
  nav.runs.classList.toggle('active', page === 'runs');
  nav.fleets.classList.toggle('active', page === 'fleets');
}

function route() {
  if (!state.api) return;
  const {project, page, rest} = parseHash();
  if (!project || !['runs', 'fleets'].includes(page)) {
    const fallback = project || defaultProject();
    if (!fallback) {
      renderNoProject();
      return;
    }
    location.replace(href(fallback, 'runs'));  // fires hashchange → route()
    return;
  }
  try {
    localStorage.setItem(PROJECT_KEY, project);
  } catch {
    // Not remembered then.
  }
  if (!state.shell) buildShell();
  updateShell(project, page);
  unmountView();
  const ctx = {
    api: state.api,
    project,
    href: (...parts) => href(project, ...parts),
    onUnauthenticated: () => signOut('Your token is no longer accepted. Sign in again.'),
  };
  const main = state.shell.main;
  main.replaceChildren();
  if (page === 'fleets') {
    state.view = mountFleets(main, ctx);
  } else if (rest.length > 0) {
    state.view = mountRun(main, ctx, rest[0], rest[1] === 'metrics' ? 'metrics' : 'overview');
  } else {
    state.view = mountRuns(main, ctx);
  }
  window.scrollTo(0, 0);
}

function renderNoProject() {
  if (!state.shell) buildShell();
  unmountView();
  replace(state.shell.main, el('div', {class: 'empty card'},
    el('h2', null, 'No projects yet'),
    el('p', null, 'You are not a member of any project. Create one with ',
       el('code', null, 'fleetwatch project create NAME'), ' or ask an admin to add you.')));
}

// A last line of defence: an unexpected error is shown, never a blank page.
function showUnexpected(error) {
  const message = error instanceof ApiError ? error.message
                                            : `Something went wrong in the page: ${error}`;
  const banner = el('div', {class: 'banner error fatal', role: 'alert'}, message);
  document.body.prepend(banner);
}
window.addEventListener('error', (e) => {
  // Chromium reports a benign ResizeObserver notice as an error event; it is not one.
  if (!e.error && /^ResizeObserver loop/.test(e.message || '')) return;
  showUnexpected(e.error || e.message);
});
window.addEventListener('unhandledrejection', (e) => showUnexpected(e.reason));
window.addEventListener('hashchange', route);

async function boot() {
  const token = storedToken();
  if (!token) {
    showLogin();
    return;
  }
  replace(root, el('div', {class: 'loading'}, 'Loading…'));
  const api = new Api(token);
  try {
    const user = await api.me();
    const projects = await api.projects();
    start(api, user, projects);
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      signOut('Your saved token is no longer accepted. Sign in again.');
    } else {
      showLogin(e.message);
    }
  }
}

boot();
