"use strict";
// Plays a torrent's file through the gateway's /stream endpoint.
const infohash = location.pathname.split("/").pop();
const params = new URLSearchParams(location.search);
const title = document.getElementById("title");
const status = document.getElementById("status");
const player = document.getElementById("player");

function playable(f) {
  return f.mime.startsWith("video/") || f.mime.startsWith("audio/");
}

async function load() {
  const res = await fetch("/api/torrents/" + infohash);
  const t = await res.json();
  if (!res.ok) {
    title.textContent = "Cannot play";
    status.textContent = t.error;
    return;
  }
  title.textContent = t.name || infohash;
  if (t.state === "metadata") {
    status.textContent = "Waiting for the torrent's metadata from peers…";
    setTimeout(load, 2000);
    return;
  }
  let file = t.files.find((f) => String(f.index) === params.get("file"));
  if (!file) {
    const candidates = t.files.filter(playable).sort((a, b) => b.length - a.length);
    file = candidates[0];
  }
  if (!file) {
    status.textContent = "This torrent has no playable file.";
    return;
  }
  player.src = file.stream_url;
  status.textContent = `${file.path} — also playable in VLC: ${file.stream_url}`;
}

load();
