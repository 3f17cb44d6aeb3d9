/** The start of the hour holding `seconds` (Unix seconds). */
export const hourOf = (seconds: number) => seconds - (seconds % 3600);

/** Unix seconds as ISO-8601, the format of every time this API returns. */
export const iso = (seconds: number | null | undefined): string | null =>
  seconds === null || seconds === undefined ? null : new Date(seconds * 1000).toISOString();
