// Live event flow: poll the JSON API for events newer than the newest shown.
(function () {
  const table = document.getElementById("events");
  if (!table) return;
  const body = table.querySelector("tbody");
  let after = Number(table.dataset.after || 0);
  const cell = (text, cls) => {
    const td = document.createElement("td");
    if (cls) td.className = cls;
    td.textContent = text;
    return td;
  };
  const seen = new Map();
  // Keep in step with STATUS_LABELS in web/routes/_templates.py.
  const LABELS = {received: "received", enqueued: "queued", coalesced: "merged into queued",
                  applied: "applied", echo: "own change", noop: "no change", conflict: "conflict",
                  held: "held", failed: "retrying", dead_letter: "dead letter"};
  async function poll() {
    try {
      // Newest rows plus the recent ones whose outcome may have changed.
      const res = await fetch("/api/events?limit=50");
      const events = await res.json();
      for (const e of events.reverse()) {
        const key = String(e.id);
        const status = e.status + "|" + e.detail;
        if (seen.get(key) === status) continue;
        seen.set(key, status);
        let row = body.querySelector(`tr[data-id="${key}"]`);
        const fresh = !row;
        if (!row) {
          row = document.createElement("tr");
          row.dataset.id = key;
          body.prepend(row);
        }
        const from = cell(e.side === "qbo" ? "QuickBooks" : "Internal");
        const origin = document.createElement("span");
        origin.className = "muted";
        origin.textContent = e.origin;
        from.append(document.createElement("br"), origin);
        const record = document.createElement("td");
        if (e.link_id) {
          const a = document.createElement("a");
          a.href = `/links/${e.link_id}`;
          a.textContent = `${e.entity_type} ${e.natural_key || e.entity_id}`;
          record.append(a);
        } else {
          record.textContent = `${e.entity_type} ${e.entity_id}`;
        }
        const outcome = document.createElement("td");
        const pill = document.createElement("span");
        pill.className = "pill " + e.status;
        pill.textContent = LABELS[e.status] || e.status;
        outcome.append(pill);
        row.replaceChildren(cell(e.id, "mono"), from, record, outcome, cell(e.detail, "detail"));
        if (fresh && e.id > after) row.classList.add("fresh");
        after = Math.max(after, e.id);
      }
      while (body.rows.length > 50) body.deleteRow(body.rows.length - 1);
    } catch (err) { /* the next poll tries again */ }
  }
  for (const row of body.rows) {
    const id = row.cells[0].textContent.trim();
    row.dataset.id = id;
  }
  setInterval(poll, 2000);
})();
