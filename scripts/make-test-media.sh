#!/usr/bin/env bash
# Makes the videos the browser end-to-end tests play (e2e/browser_test.go), into OUTDIR:
#   test-h264.mp4  H.264 (main) + AAC, MP4 with the index up front (faststart)
#   test-vp9.webm  VP9 + Opus, WebM with the cues up front
# Each is 20 s of ffmpeg's test pattern with a tone, 640x360 at 25 fps, about 3.5 MB: light noise
# keeps the encoder from squeezing the pattern to nothing, so the files are big enough for a
# transfer that takes seconds. The tests call this once per run; it needs ffmpeg (Debian: ffmpeg).
set -euo pipefail
if [ $# -ne 1 ]; then
  echo "usage: $0 OUTDIR" >&2
  exit 2
fi
out=$1
mkdir -p "$out"
duration=20
video="testsrc2=size=640x360:rate=25:duration=$duration"
common=(-hide_banner -loglevel error -nostdin -y -threads 2)

ffmpeg "${common[@]}" \
  -f lavfi -i "$video" -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$duration" \
  -vf "noise=alls=12:allf=t" \
  -c:v libx264 -profile:v main -pix_fmt yuv420p -preset veryfast -b:v 1300k -maxrate 1500k -bufsize 2M -g 50 \
  -c:a aac -b:a 64k -movflags +faststart -metadata title="swarmgate test h264" \
  "$out/test-h264.mp4"

ffmpeg "${common[@]}" \
  -f lavfi -i "$video" -f lavfi -i "sine=frequency=660:sample_rate=48000:duration=$duration" \
  -vf "noise=alls=12:allf=t" \
  -c:v libvpx-vp9 -deadline realtime -cpu-used 8 -row-mt 1 -b:v 1100k -minrate 800k -maxrate 1300k -g 50 \
  -c:a libopus -b:a 64k -cues_to_front 1 -metadata title="swarmgate test vp9" \
  "$out/test-vp9.webm"

ls -l "$out/test-h264.mp4" "$out/test-vp9.webm"
