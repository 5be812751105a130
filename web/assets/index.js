// Fills this server's address into the examples on the home page.
const origin = window.location.origin;
for (const el of document.querySelectorAll('.origin')) el.textContent = origin;

// Shows which node this is and the addresses it advertises in ICE candidates
// (GET /api/server): the first thing to check when media does not flow.
async function showServer() {
  const box = document.getElementById('server-info');
  if (!box) return;
  const set = (key, text) => {
    const el = box.querySelector(`[data-key="${key}"]`);
    if (el) el.textContent = text;
  };
  try {
    const r = await fetch('/api/server');
    if (!r.ok) throw new Error(`HTTP ${r.status}`);
    const info = await r.json();
    set('nodeId', `${info.nodeId} (version ${info.version})`);
    set('candidates', info.candidates.join(', '));
    const auth = {
      open: 'development mode: open to anyone (start with --auth-key to require tokens)',
      token: 'static bearer token required',
      jwt: 'access tokens (JWT) required; mint them with `switchboard token`',
    }[info.auth] || info.auth;
    set('state', `${info.draining ? 'draining: no new rooms' : 'ready'}; ${info.rooms} room(s) live`);
    set('auth', auth);
  } catch (err) {
    set('state', `unavailable (${err.message})`);
  }
}
showServer();
