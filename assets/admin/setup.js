// First-run setup: the one-time token is in the URL fragment (never sent to the server in
// a request line or a log); it is taken out of the address bar at once.
"use strict";
const $ = (id) => document.getElementById(id);
const token = location.hash.slice(1);
history.replaceState(null, "", location.pathname);

function showError(text) { $("error").textContent = text; $("error").hidden = false; }

if (!token) showError("This page needs the setup link fazt printed at start (…/setup#…).");

$("setup").addEventListener("submit", async (e) => {
  e.preventDefault();
  if ($("password").value !== $("again").value) return showError("The two passwords differ.");
  let res;
  try {
    res = await fetch("/api/setup", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ token, username: $("username").value.trim(), password: $("password").value }),
    });
  } catch (err) {
    return showError("fazt is not answering: " + err.message);
  }
  if (res.ok) return location.replace("/");
  const body = await res.json().catch(() => null);
  showError((body && body.error && body.error.message) || "setup failed (" + res.status + ")");
});
