/**
 * Just enough POSIX shell word splitting to read the commands the dispatcher sends: single
 * quotes (with the `'\''` idiom), double quotes with backslash escapes, bare words.
 * Returns undefined for unterminated quotes.
 */
export function shellSplit(command: string): string[] | undefined {
  const words: string[] = [];
  let cur = "";
  let inWord = false;
  let i = 0;
  while (i < command.length) {
    const c = command[i]!;
    if (c === "'") {
      const end = command.indexOf("'", i + 1);
      if (end < 0) return undefined;
      cur += command.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= command.length) return undefined;
        const d = command[i]!;
        if (d === '"') break;
        if (d === "\\" && i + 1 < command.length && '$`"\\\n'.includes(command[i + 1]!)) {
          cur += command[i + 1];
          i += 2;
        } else {
          cur += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === "\\" && i + 1 < command.length) {
      cur += command[i + 1];
      inWord = true;
      i += 2;
    } else if (c === " " || c === "\t" || c === "\n") {
      if (inWord) words.push(cur);
      cur = "";
      inWord = false;
      i++;
    } else {
      cur += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(cur);
  return words;
}

/** Quote one word for sh. */
export function shellQuote(word: string): string {
  return `'${word.replaceAll("'", "'\\''")}'`;
}
