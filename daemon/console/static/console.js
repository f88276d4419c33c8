// itsmd console: live reload on committed changes (server-sent events), keyboard, countdowns.
// Everything here is an enhancement: the pages are plain forms and links without it.
"use strict";
(function () {
  const body = document.body;
  const csrf = () => (document.querySelector('meta[name="itsmd-csrf"]') || {}).content || "";
  let selected = -1;

  // -- live ---------------------------------------------------------------------------------------
  const live = body.dataset.live || "";
  let refreshTimer = null;
  let refreshing = false;

  function relevant(changed) {
    if (changed.resync) return true;
    const [kind, id] = live.split(":");
    const ids = changed[kind];
    if (!ids) return false;
    return id === undefined || ids.indexOf(Number(id)) >= 0;
  }

  function editing() {
    const el = document.activeElement;
    return el && el.closest("#main") && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) && el.type !== "checkbox";
  }

  async function refresh() {
    refreshTimer = null;
    if (refreshing) { schedule(); return; }
    if (editing()) { schedule(1000); return; }  // never swap the page under someone typing
    refreshing = true;
    try {
      const resp = await fetch(location.href, { headers: { Accept: "text/html" }, credentials: "same-origin" });
      if (!resp.ok || resp.redirected) return;
      const doc = new DOMParser().parseFromString(await resp.text(), "text/html");
      const next = doc.getElementById("main");
      if (!next) return;
      const checked = new Set([...document.querySelectorAll('#main input[name="id"]:checked')].map((c) => c.value));
      const selectedId = currentRow() ? currentRow().dataset.id : null;
      next.querySelectorAll(".flash").forEach((f) => f.remove());
      document.getElementById("main").replaceChildren(...next.childNodes);
      document.querySelectorAll('#main input[name="id"]').forEach((c) => { c.checked = checked.has(c.value); });
      const meta = doc.querySelector('meta[name="itsmd-csrf"]');
      if (meta) document.querySelector('meta[name="itsmd-csrf"]').content = meta.content;
      rows().forEach((r, i) => { if (r.dataset.id === selectedId) selected = i; });
      mark();
      countdowns();
      body.dataset.refreshed = String(Date.now());
    } catch (e) {
      // the daemon may be restarting; the event stream reconnects and announces again
    } finally {
      refreshing = false;
    }
  }

  function schedule(delay) {
    if (refreshTimer === null) refreshTimer = setTimeout(refresh, delay || 150);
  }

  if (live && window.EventSource) {
    const state = document.getElementById("live-state");
    let wasDown = false;
    const source = new EventSource("/events");
    source.onopen = () => {
      if (state) { state.classList.add("on"); state.title = "live"; }
      if (wasDown) { wasDown = false; schedule(); }  // back after a restart: catch up on what was missed
    };
    source.onerror = () => {
      wasDown = true;
      if (state) { state.classList.remove("on"); state.title = "reconnecting"; }
    };
    source.addEventListener("changed", (ev) => {
      try { if (relevant(JSON.parse(ev.data))) schedule(); } catch (e) { schedule(); }
    });
  }

  // -- keyboard -----------------------------------------------------------------------------------
  function rows() { return [...document.querySelectorAll("#incidents tbody tr[data-id]")]; }
  function currentRow() { const r = rows(); return selected >= 0 && selected < r.length ? r[selected] : null; }
  function mark() {
    rows().forEach((r, i) => r.classList.toggle("selected", i === selected));
    const row = currentRow();
    if (row) row.scrollIntoView({ block: "nearest" });
  }
  function targetId() {
    const row = currentRow();
    if (row) return row.dataset.id;
    const page = document.getElementById("incident");
    return page ? page.dataset.id : null;
  }

  function flash(text, bad) {
    const p = document.createElement("p");
    p.className = bad ? "flash bad" : "flash";
    p.setAttribute("role", "status");
    p.textContent = text;
    document.getElementById("main").prepend(p);
  }

  async function act(action) {
    const id = targetId();
    if (!id) return;
    const form = new FormData();
    form.append("csrf", csrf());
    form.append("action", action);
    try {
      const resp = await fetch(`/incidents/${encodeURIComponent(id)}/act`, {
        method: "POST", body: form, credentials: "same-origin", headers: { Accept: "application/json" },
      });
      const answer = await resp.json();
      flash(answer.message, !answer.ok);
      schedule();
    } catch (e) {
      flash(`could not ${action}: ${e}`, true);
    }
  }

  document.addEventListener("keydown", (ev) => {
    if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
    const help = document.getElementById("help");
    if (ev.key === "Escape") { help.hidden = true; if (document.activeElement) document.activeElement.blur(); return; }
    const el = document.activeElement;
    if (el && /^(INPUT|TEXTAREA|SELECT)$/.test(el.tagName) && el.type !== "checkbox") return;
    const r = rows();
    switch (ev.key) {
      case "j": if (r.length) { selected = Math.min(selected + 1, r.length - 1); mark(); } break;
      case "k": if (r.length) { selected = Math.max(selected - 1, 0); mark(); } break;
      case "Enter": if (currentRow()) location.href = currentRow().dataset.href; else return; break;
      case "x": { const row = currentRow(); const box = row && row.querySelector('input[name="id"]'); if (box) box.checked = !box.checked; break; }
      case "a": act("acknowledge"); break;
      case "r": act("resolve"); break;
      case "/": { const s = document.getElementById("search"); if (s) s.focus(); break; }
      case "?": help.hidden = !help.hidden; break;
      default: return;
    }
    ev.preventDefault();
  });

  // -- countdowns ---------------------------------------------------------------------------------
  function span(seconds) {
    seconds = Math.abs(seconds);
    if (seconds < 60) return `${Math.round(seconds)}s`;
    const minutes = Math.floor(seconds / 60);
    if (minutes < 60) return `${minutes}m`;
    const hours = Math.floor(minutes / 60);
    if (hours < 48) return `${hours}h${String(minutes % 60).padStart(2, "0")}m`;
    return `${Math.floor(hours / 24)}d${String(hours % 24).padStart(2, "0")}h`;
  }
  function countdowns() {
    document.querySelectorAll("[data-deadline]").forEach((el) => {
      const left = (Date.parse(el.dataset.deadline) - Date.now()) / 1000;
      if (Number.isNaN(left)) return;
      el.textContent = left >= 0 ? `${span(left)} left` : `overdue ${span(left)}`;
      if (left < 0) el.classList.add("bad");
    });
  }
  countdowns();
  setInterval(countdowns, 15000);
})();
