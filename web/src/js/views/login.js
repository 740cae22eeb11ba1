// The sign-in page: a token, checked against GET /api/users/me before it is kept.
import {el, replace} from '../dom.js';

// ctx: {message (shown as an error, optional), signIn(token) → Promise (rejects with an Error
// whose message is shown)}.
export function mountLogin(root, ctx) {
  const input = el('input', {
    id: 'token', name: 'token', type: 'password', autocomplete: 'current-password',
    required: true, spellcheck: 'false', placeholder: 'Paste your token', 'data-test': 'token',
  });
  const error = el('div', {class: 'banner error', role: 'alert', 'data-test': 'login-error',
                           hidden: !ctx.message}, ctx.message || '');
  const button = el('button', {class: 'button primary', type: 'submit'}, 'Sign in');
  const form = el('form', {class: 'login-form', novalidate: true},
    el('label', {for: 'token'}, 'Token'), input, error, button,
    el('p', {class: 'muted small'},
       'The server prints the admin token when it starts for the first time; ',
       el('code', null, 'fleetwatch user create NAME'), ' prints a user\'s token.'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const token = input.value.trim();
    if (!token) {
      error.hidden = false;
      error.textContent = 'Enter a token.';
      return;
    }
    button.disabled = true;
    button.textContent = 'Signing in…';
    error.hidden = true;
    try {
      await ctx.signIn(token);
    } catch (e) {
      error.hidden = false;
      error.textContent = e.message || String(e);
      button.disabled = false;
      button.textContent = 'Sign in';
      input.select();
    }
  });
  replace(root, el('div', {class: 'login-page'},
    el('div', {class: 'login-card card'},
      el('div', {class: 'login-brand'},
        el('img', {src: '/assets/favicon.svg', alt: '', width: 36, height: 36}),
        el('div', null, el('h1', null, 'fleetwatch'),
           el('p', {class: 'muted'}, 'GPU fleets, runs and what they use'))),
      form)));
  input.focus();
  return {destroy() {}};
}
