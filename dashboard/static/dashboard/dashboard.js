// Keeps the operations dashboard live: polls its JSON endpoint and swaps in each panel's
// HTML (rendered on the server by the same templates as the page). A panel whose HTML did
// not change is left alone, so focus, open details and screen-reader position stay where
// they are; one that changed gets focus back on the same link. Polling pauses while the tab
// is hidden, and on request (the button: WCAG 2.2.2, content that updates by itself).
"use strict";

(function () {
  const root = document.getElementById("operations-dashboard");
  if (!root || !window.fetch) {
    return;
  }
  const url = root.dataset.url;
  const every = Math.max(1, Number(root.dataset.every) || 5) * 1000;
  const status = root.querySelector("[data-live-status]");
  const toggle = root.querySelector("[data-live-toggle]");
  const last = new Map();
  let paused = false;
  let failures = 0;
  let timer = null;

  function openDetails(box) {
    return Array.from(box.querySelectorAll("details[open] > summary"), (summary) => summary.textContent);
  }

  function swap(id, html) {
    const box = document.getElementById(id);
    if (!box || last.get(id) === html) {
      return;
    }
    last.set(id, html);
    const active = box.contains(document.activeElement) ? document.activeElement : null;
    const href = active && active.getAttribute("href");
    const opened = openDetails(box);
    box.innerHTML = html;
    box.querySelectorAll("details > summary").forEach((summary) => {
      if (opened.includes(summary.textContent)) {
        summary.parentElement.open = true;
      }
    });
    if (href) {
      const again = Array.from(box.querySelectorAll("a[href]")).find((link) => link.getAttribute("href") === href);
      if (again) {
        again.focus();
      }
    }
  }

  function schedule() {
    clearTimeout(timer);
    if (paused || document.hidden) {
      return;
    }
    const wait = failures ? Math.min(60000, every * 2 ** failures) : every;
    timer = setTimeout(refresh, wait);
  }

  async function refresh() {
    try {
      const response = await fetch(url, {
        headers: { Accept: "application/json" },
        credentials: "same-origin",
        cache: "no-store",
      });
      const type = response.headers.get("content-type") || "";
      if (!response.ok || !type.includes("application/json")) {
        // A redirect to the login page: the session ended.
        throw new Error(response.redirected ? "signed out; reload the page to sign in" : "HTTP " + response.status);
      }
      const body = await response.json();
      Object.entries(body.panels).forEach(([id, html]) => swap(id, html));
      status.textContent = body.updated_text;
      failures = 0;
    } catch (error) {
      failures += 1;
      status.textContent = "Live updates failed (" + error.message + "); trying again.";
    }
    schedule();
  }

  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    paused = !paused;
    // A toggle keeps its name; aria-pressed says whether it is on.
    toggle.setAttribute("aria-pressed", String(paused));
    if (paused) {
      clearTimeout(timer);
      status.textContent = "Live updates paused.";
    } else {
      refresh();
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && !paused) {
      refresh();
    }
  });
  schedule();
})();
