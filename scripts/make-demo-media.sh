#!/usr/bin/env bash
# Makes the built-in demo video (gateway/demo/swarmgate-demo.mp4): 30 s of ffmpeg's test pattern
# with a tone, H.264/AAC MP4 with the index up front (faststart) so that it plays while it streams.
# The committed file is what `swarmgate serve --demo` seeds; rerun this only to change it.
set -euo pipefail
out=${1:-"$(dirname "$0")/../gateway/demo/swarmgate-demo.mp4"}
ffmpeg -hide_banner -loglevel error -y \
  -f lavfi -i "testsrc2=size=640x360:rate=25:duration=30" \
  -f lavfi -i "sine=frequency=440:sample_rate=44100:duration=30" \
  -c:v libx264 -profile:v main -pix_fmt yuv420p -preset veryfast -b:v 600k -g 50 \
  -c:a aac -b:a 64k -movflags +faststart -metadata title="swarmgate demo" \
  -fflags +bitexact -flags:v +bitexact -flags:a +bitexact "$out"
ls -l "$out"
