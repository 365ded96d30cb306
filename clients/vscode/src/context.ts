// The local context of one completion request and the clean-up of its
// answer: the same split as llama.vim / llama.vscode (and the Neovim
// plugin), so wisp sees the request shape README.md documents.

export interface Lines {
    lineCount: number;
    lineAt(line: number): { text: string };
}

export interface LocalContext {
    prefix: string;       // n_prefix lines before the cursor line, each ending in "\n"
    prompt: string;       // the cursor line up to the cursor ("" on a blank line)
    suffix: string;       // rest of the cursor line, "\n", n_suffix lines after, "\n"
    lineSuffix: string;   // rest of the cursor line
    indent: number;       // n_indent: the cursor line's indentation (0 on a blank line)
    blankLine: boolean;   // the cursor line holds only whitespace before the cursor
}

export function linesOf(doc: Lines, first: number, last: number): string[] {
    const out: string[] = [];
    for (let i = Math.max(0, first); i <= Math.min(doc.lineCount - 1, last); i++) {
        out.push(doc.lineAt(i).text);
    }
    return out;
}

export function localContext(doc: Lines, line: number, character: number,
                             nPrefix: number, nSuffix: number): LocalContext {
    const text = doc.lineAt(line).text;
    const before = text.slice(0, character);
    const lineSuffix = text.slice(character);
    const blankLine = /^\s*$/.test(before);
    const prefixLines = linesOf(doc, line - nPrefix, line - 1);
    const suffixLines = linesOf(doc, line + 1, line + nSuffix);
    return {
        prefix: prefixLines.map(l => l + "\n").join(""),
        // On a blank line the model writes the indentation itself.
        prompt: blankLine ? "" : before,
        suffix: lineSuffix + "\n" + suffixLines.map(l => l + "\n").join(""),
        lineSuffix,
        indent: blankLine ? 0 : text.length - text.trimStart().length,
        blankLine,
    };
}

// What to insert at the cursor for a completion `text`, or undefined when
// there is nothing worth showing. `typedIndent` is the whitespace before the
// cursor on a blank line (the model wrote its own indentation: as much of it
// as the user already typed is dropped).
export function insertTextFor(text: string, ctx: LocalContext, typedIndent: string,
                              nextLine: string | undefined): string | undefined {
    const lines = text.split(/\r?\n/);
    while (lines.length > 1 && lines[lines.length - 1].trim() === "") {
        lines.pop();
    }
    if (ctx.blankLine && typedIndent.length > 0) {
        let i = 0;
        while (i < typedIndent.length && i < lines[0].length && lines[0][i] === typedIndent[i]) {
            i++;
        }
        lines[0] = lines[0].slice(i);
    }
    if (lines.join("").trim() === "") {
        return undefined;
    }
    // A completion that only repeats the next line of the document.
    if (lines.length === 1 && nextLine !== undefined
        && (ctx.blankLine ? typedIndent : ctx.prompt) + lines[0] === nextLine) {
        return undefined;
    }
    if (ctx.lineSuffix.trim() !== "") {
        // Mid-line: never run past the text right of the cursor.
        if (lines[0].endsWith(ctx.lineSuffix)) {
            return lines[0].slice(0, lines[0].length - ctx.lineSuffix.length) || undefined;
        }
        return lines[0];
    }
    return lines.join("\n");
}
