// The dashboard's only script: live refresh of the workflows list, output previews on demand.
"use strict";

const REFRESH_SECONDS = 3;

function startLiveRefresh() {
  const region = document.getElementById("live");
  const toggle = document.getElementById("live-refresh");
  if (!region || !toggle) return;
  async function refresh() {
    if (!toggle.checked || document.hidden) return;
    try {
      const response = await fetch(region.dataset.liveUrl, { headers: { Accept: "text/html" } });
      // The fragment is rendered (and escaped) by the server, like the page itself.
      if (response.ok) region.innerHTML = await response.text();
    } catch (error) {
      /* the server may be restarting; try again at the next tick */
    }
  }
  setInterval(refresh, REFRESH_SECONDS * 1000);
}

function startPreviews() {
  for (const button of document.querySelectorAll("button.preview")) {
    button.addEventListener("click", async () => {
      const target = button.nextElementSibling;
      button.disabled = true;
      const response = await fetch(button.dataset.url, { headers: { Accept: "application/json" } });
      const body = await response.json();
      target.textContent = response.ok ? body.preview : body.error.message;
      target.hidden = false;
      button.hidden = true;
    });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  startLiveRefresh();
  startPreviews();
});
