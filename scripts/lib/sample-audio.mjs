// Sample recordings for `npm run send-sample -- audio` and the browser tests: the spoken sample call
// (test/fixtures/sample-call.mp3), or a long one made of it, which plays like a real long call.

/** Bitrates (kb/s) of MPEG Layer III by index: MPEG-1, then MPEG-2 / 2.5. */
const BITRATES = {
  1: [0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320],
  2: [0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160],
};
/** Sample rates (Hz) by index, for MPEG-1; MPEG-2 halves them, MPEG-2.5 quarters them. */
const RATES = [44100, 48000, 32000];

/** The length of the Layer III frame whose header starts at `at`, or 0 when none starts there. */
function frameLength(b, at) {
  if (at + 4 > b.length || b[at] !== 0xff || (b[at + 1] & 0xe0) !== 0xe0) return 0;
  const version = (b[at + 1] >> 3) & 3; // 3: MPEG-1, 2: MPEG-2, 0: MPEG-2.5
  const layer = (b[at + 1] >> 1) & 3; // 1: Layer III
  const bitrate = BITRATES[version === 3 ? 1 : 2][b[at + 2] >> 4];
  const rateIndex = (b[at + 2] >> 2) & 3;
  if (version === 1 || layer !== 1 || !bitrate || rateIndex === 3) return 0;
  const rate = RATES[rateIndex] / (version === 3 ? 1 : version === 2 ? 2 : 4);
  const padding = (b[at + 2] >> 1) & 1;
  return Math.floor(((version === 3 ? 144 : 72) * bitrate * 1000) / rate) + padding;
}

/** The size of a leading ID3v2 tag (0 when there is none). */
function id3Length(b) {
  if (b.length < 10 || b.toString("latin1", 0, 3) !== "ID3") return 0;
  return 10 + ((b[6] << 21) | (b[7] << 14) | (b[8] << 7) | b[9]);
}

/**
 * An MP3 of about `bytes` bytes that plays: the sample's ID3 tag, then its audio frames again and
 * again. The first frame's Xing/Info header is left out, because it states the frame count of the
 * short file (a player would show 0:19 for hours of audio); without it the player reckons the
 * duration from the constant bitrate, as it does for a real call recorded that way.
 */
export function longMp3(sample, bytes) {
  const tag = id3Length(sample);
  const frames = [];
  for (let at = tag; at < sample.length; ) {
    const n = frameLength(sample, at);
    if (n === 0) break;
    const frame = sample.subarray(at, at + n);
    const info = frame.includes("Xing", 0, "latin1") || frame.includes("Info", 0, "latin1");
    if (!(frames.length === 0 && info)) frames.push(frame);
    at += n;
  }
  if (frames.length === 0) throw new Error("the sample recording has no MPEG Layer III frames");
  const audio = Buffer.concat(frames);
  const out = Buffer.alloc(Math.max(bytes, tag + audio.length));
  sample.copy(out, 0, 0, tag);
  for (let at = tag; at < out.length; at += audio.length) audio.copy(out, at, 0, Math.min(audio.length, out.length - at));
  return out;
}

/** "19 KB", "50.0 MB": sizes in binary units, as the console shows them. */
export function size(bytes) {
  return bytes < 1024 * 1024 ? `${Math.max(1, Math.round(bytes / 1024))} KB` : `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}
