// Calls to Hanchang from the window's pages: the session cookie, the CSRF header, Korean errors.
const csrf = document.querySelector('meta[name="csrf-token"]').content;
const $ = (selector) => document.querySelector(selector);

async function api(path, options = {}) {
  const headers = { "X-CSRF-Token": csrf, ...(options.headers || {}) };
  if (options.json !== undefined) { headers["Content-Type"] = "application/json"; options.body = JSON.stringify(options.json); }
  const response = await fetch(path, { ...options, headers, credentials: "same-origin" });
  if (response.status === 401) { location.href = "/"; throw new Error("signed out"); }
  if (!response.ok && response.status !== 204) {
    let message = response.statusText;
    try { message = (await response.json()).error.message; } catch (_) { /* keep status text */ }
    throw new Error(message);
  }
  return response.status === 204 ? null : response;
}
const getJson = async (path) => (await api(path)).json();
// A page's status line (#notice): green for done, red for an error.
function notify(message, isError = false) {
  const box = $("#notice");
  box.textContent = message;
  box.hidden = !message;
  box.classList.toggle("ok", !isError);
}
