// Live progress for running jobs (server-sent events) and the stage timeline's widths. No other script runs.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  for (const el of document.querySelectorAll(".stage[data-width]")) {
    el.style.flexGrow = el.dataset.width;
  }
  const table = document.getElementById("runs");
  if (!table || !table.querySelector("progress") || !window.EventSource) return;
  const source = new EventSource("/live/runs");
  source.onmessage = (event) => {
    for (const run of JSON.parse(event.data)) {
      const row = table.querySelector(`tr[data-job="${CSS.escape(run.job_id)}"]`);
      if (!row) continue;
      const bar = row.querySelector("progress");
      if (bar) bar.value = run.fraction;
      const steps = row.querySelector(".steps");
      if (steps && run.steps !== null) steps.textContent = run.steps.toLocaleString("en-US");
      const reward = row.querySelector(".reward");
      if (reward && run.reward !== null) reward.textContent = run.reward.toFixed(3);
    }
  };
});
