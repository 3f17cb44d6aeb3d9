/** Whether a transcription means audio should arrive (AUDIO_BACKFILL and `has_audio`). */
export function audioExpected(mode: "auto" | "always" | "off", data: Record<string, unknown>): boolean {
  if (mode === "off") return false;
  if (mode === "always") return true;
  return data["has_audio"] === true || data["has_user_audio"] === true || data["has_response_audio"] === true;
}
