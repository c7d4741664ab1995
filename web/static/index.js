"use strict";
const list = document.getElementById("torrents");
const errorBox = document.getElementById("error");

async function refresh() {
  const res = await fetch("/api/torrents");
  const torrents = await res.json();
  list.replaceChildren();
  if (torrents.length === 0) {
    list.append(Object.assign(document.createElement("li"), { textContent: "None yet." }));
  }
  for (const t of torrents) {
    const li = document.createElement("li");
    const a = Object.assign(document.createElement("a"), {
      href: "/watch/" + t.infohash,
      textContent: t.name || t.infohash,
    });
    li.append(a, ` — ${t.state}, ${(t.progress * 100).toFixed(0)}%, peers ${t.peers.native} native / ${t.peers.webrtc} WebRTC`);
    list.append(li);
  }
}

document.getElementById("add").addEventListener("submit", async (ev) => {
  ev.preventDefault();
  errorBox.textContent = "";
  const source = document.getElementById("source").value.trim();
  const body = source.startsWith("magnet:") ? { magnet: source } : { infohash: source };
  const res = await fetch("/api/torrents", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = await res.json();
  if (!res.ok) {
    errorBox.textContent = answer.error;
    return;
  }
  location.href = "/watch/" + answer.infohash;
});

refresh();
setInterval(refresh, 3000);
