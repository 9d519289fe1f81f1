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
        row.replaceChildren(
          cell(e.id, "mono"), cell(e.origin), cell(e.side),
          cell(`${e.entity_type} ${e.entity_id}`, "mono"),
          (() => { const td = document.createElement("td"); const s = document.createElement("span");
                   s.className = "pill " + e.status; s.textContent = e.status; td.append(s); return td; })(),
          cell(e.detail, "detail"));
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
