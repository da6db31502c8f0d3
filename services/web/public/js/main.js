// Flash Tickets web UI: a hash router over small view modules, each loaded when first needed.
// Every view gets an AbortSignal that fires when the buyer leaves it (timers, sockets, fetches).

import { h, replace } from './dom.js';
import * as session from './session.js';
import { renderError } from './app.js';

const ROUTES = [
  { pattern: '/', load: () => import('./views/events.js'), nav: '/' },
  { pattern: '/login', load: () => import('./views/login.js') },
  { pattern: '/signup', load: () => import('./views/signup.js') },
  { pattern: '/events/:id', load: () => import('./views/event.js'), nav: '/' },
  { pattern: '/events/:id/queue', load: () => import('./views/queue.js'), nav: '/' },
  { pattern: '/orders', load: () => import('./views/orders.js'), nav: '/orders' },
  { pattern: '/orders/:id', load: () => import('./views/order.js'), nav: '/orders' },
  { pattern: '/admin', load: () => import('./views/admin.js'), nav: '/admin' },
  { pattern: '/admin/new', load: () => import('./views/admin-new.js'), nav: '/admin' },
  { pattern: '/admin/events/:id', load: () => import('./views/console.js'), nav: '/admin' },
].map((route) => ({
  ...route,
  regex: new RegExp(`^${route.pattern.replace(/:(\w+)/g, '(?<$1>[^/]+)')}$`),
}));

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let controller = null;
let firstRender = true;
let renderCount = 0;

/** The route part of the address: `#/events/1?x=y` → `{path: '/events/1', query}`. */
function location_() {
  const raw = window.location.hash.replace(/^#/, '') || '/';
  const [path, search = ''] = raw.split('?');
  return { path: path || '/', query: new URLSearchParams(search) };
}

export function navigate(path, { replace: replaceEntry = false } = {}) {
  const target = `#${path}`;
  if (window.location.hash === target) {
    render();
  } else if (replaceEntry) {
    window.location.replace(target);
  } else {
    window.location.hash = target;
  }
}

function renderNav(activeNav) {
  const user = session.user();
  const link = (href, text) =>
    h('li', null, h('a', { href: `#${href}`, 'aria-current': activeNav === href ? 'page' : null }, text));
  const items = [link('/', 'Events')];
  if (user) items.push(link('/orders', 'My orders'));
  if (user?.role === 'admin') items.push(link('/admin', 'Console'));
  if (user) {
    items.push(
      h('li', null, h('span', { class: 'who', title: user.email }, user.email)),
      h(
        'li',
        null,
        h(
          'button',
          {
            type: 'button',
            onclick: () => {
              session.signOut();
              navigate('/');
            },
          },
          'Log out',
        ),
      ),
    );
  } else {
    items.push(link('/login', 'Log in'), link('/signup', 'Sign up'));
  }
  replace(nav, items);
}

async function render() {
  controller?.abort();
  controller = new AbortController();
  const { signal } = controller;
  renderCount += 1;
  const mine = renderCount;
  const { path, query } = location_();
  const route = ROUTES.find((r) => r.regex.test(path));
  renderNav(route?.nav ?? null);
  const root = h('div', { class: 'view' });
  replace(main, root);
  document.title = 'Flash Tickets';
  const ctx = {
    path: query.toString() ? `${path}?${query}` : path,
    params: route ? { ...path.match(route.regex).groups } : {},
    query,
    root,
    signal,
    navigate,
    setTitle: (title) => {
      if (!signal.aborted) document.title = title ? `${title} — Flash Tickets` : 'Flash Tickets';
    },
  };
  try {
    if (!route) {
      ctx.setTitle('Page not found');
      replace(
        root,
        h('h1', { tabindex: '-1' }, 'Page not found'),
        h('p', null, 'There is nothing at this address. ', h('a', { href: '#/' }, 'See the events on sale'), '.'),
      );
    } else {
      const module = await route.load();
      if (signal.aborted) return;
      await module.default(ctx);
    }
  } catch (error) {
    if (signal.aborted || error?.name === 'AbortError') return;
    renderError(root, error);
  }
  if (signal.aborted || mine !== renderCount) return;
  if (!firstRender) {
    const heading = root.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    } else {
      main.focus();
    }
    window.scrollTo(0, 0);
  }
  firstRender = false;
}

window.addEventListener('hashchange', render);
session.onChange(() => renderNav(ROUTES.find((r) => r.regex.test(location_().path))?.nav ?? null));
document.getElementById('skip-link')?.addEventListener('click', (event) => {
  event.preventDefault();
  main.focus();
});
render();
