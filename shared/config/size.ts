const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4, p: 1024 ** 5 };

/**
 * pgBackRest's size values: bytes, or a number with KB/KiB/K, MB/MiB/M, ... where the multiplier
 * is a power of 1024, case-insensitive ("5GiB", "5GB", "5g"). Fractions are allowed ("1.5GiB").
 * Returns undefined when the text is not a size.
 */
export function parseSize(text: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(?:([kmgtp])i?)?b?$/i.exec(text.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[(m[2] ?? '').toLowerCase()]);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}
