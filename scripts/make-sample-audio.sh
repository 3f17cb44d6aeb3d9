#!/usr/bin/env bash
# Rebuilds test/fixtures/sample-call.mp3: a short spoken support call (agent and customer, two voices),
# the recording `npm run send-sample -- audio`, the browser tests and the screenshots use.
# Needs Debian's espeak-ng, sox and lame:  apt-get install -y espeak-ng sox lame
# The output is committed; this script says how it was made (a rebuild sounds the same but is not
# byte-identical).
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

say() { # say <n> <voice> <text>
  espeak-ng -v "$2" -s 180 -w "$work/$1.wav" "$3"
  sox "$work/$1.wav" -r 16000 -c 1 "$work/$1r.wav" pad 0 0.3
}
say 1 en-us+f3 "Hi, this is Acme support. How can I help you today?"
say 2 en-gb+m3 "My order forty four seventy one arrived with a cracked screen. I'd like a replacement."
say 3 en-us+f3 "I'm sorry about that. Let me look up order forty four seventy one."
say 4 en-us+f3 "A replacement ships today, and arrives within two business days."
say 5 en-gb+m3 "Great, thank you."

sox "$work"/1r.wav "$work"/2r.wav "$work"/3r.wav "$work"/4r.wav "$work"/5r.wav "$work/call.wav"
# 8 kb/s mono MPEG-2 Layer III at 16 kHz (telephone quality, like a phone call): about 1 KB a second: a few KB per second, plays in every browser.
lame --quiet -m m -b 8 --resample 16 --tt "postcall sample call" --ta "espeak-ng" "$work/call.wav" test/fixtures/sample-call.mp3
soxi -D "$work/call.wav" | xargs printf 'test/fixtures/sample-call.mp3: %.1f s, '
stat -c '%s bytes' test/fixtures/sample-call.mp3
