/**
 * "Did you mean": the known names closest to a mistyped one (edit distance at most 2, or one
 * contains the other), nearest first.
 */
export function closest(wanted: string, known: readonly string[], max = 3): string[] {
  return known
    .map((name) => ({ name, d: name.includes(wanted) || wanted.includes(name) ? 1 : distance(wanted, name) }))
    .filter((x) => x.d <= 2 && x.name !== wanted)
    .sort((a, b) => a.d - b.d || a.name.localeCompare(b.name))
    .slice(0, max)
    .map((x) => x.name);
}

/** Levenshtein distance (insert, delete, replace), O(a·b) with one row. */
export function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diagonal = row[0]!;
    row[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const above = row[j]!;
      row[j] = Math.min(above + 1, row[j - 1]! + 1, diagonal + (a[i - 1] === b[j - 1] ? 0 : 1));
      diagonal = above;
    }
  }
  return row[b.length]!;
}
