// The repository-context ring buffer sent as `input_extra`. The rules are
// llama.vim's, shared with the Neovim plugin and written down in README.md
// ("Context ring buffer"): chunks of lines picked from files the user works
// in, queued, moved into a bounded FIFO only while the user is idle (so the
// cached prompt prefix stays stable while they type), and evicted when
// they repeat the text around the cursor.

export interface RingOptions {
    nChunks: number;      // ring capacity; 0 turns extra context off
    chunkSize: number;    // lines; a picked window is chunkSize / 2 lines
    maxQueued: number;    // queue capacity; the oldest queued chunk goes first
}

export interface Chunk {
    lines: string[];
    text: string;         // lines joined with "\n", plus a final "\n"
    filename: string;
}

// Dice coefficient over lines: 2 * |lines of a also in b| / (|a| + |b|).
export function chunkSimilarity(a: string[], b: string[]): number {
    if (a.length + b.length === 0) {
        return 1;
    }
    const inB = new Set(b);
    let common = 0;
    for (const line of a) {
        if (inB.has(line)) {
            common++;
        }
    }
    return (2 * common) / (a.length + b.length);
}

// A picked chunk that is this similar to a held one replaces it (or is
// dropped when eviction is off).
export const SIMILAR_PICK = 0.9;
// A held chunk this similar to the text around the cursor is dropped before
// a request: it would only make the model repeat what is already there.
export const SIMILAR_CURSOR = 0.5;

export class RingBuffer {
    chunks: Chunk[] = [];
    queued: Chunk[] = [];
    evicted = 0;

    constructor(public opts: RingOptions, private random: () => number = Math.random) {}

    // Offers lines for a chunk. Fewer than 3 lines are ignored; more than
    // chunkSize - 1 are cut to a random window of chunkSize / 2 lines.
    pick(lines: string[], filename: string, evict: boolean): void {
        if (this.opts.nChunks <= 0 || lines.length < 3) {
            return;
        }
        let picked = lines;
        if (lines.length + 1 >= this.opts.chunkSize) {
            const half = Math.floor(this.opts.chunkSize / 2);
            const start = Math.floor(this.random() * Math.max(0, lines.length - half + 1));
            picked = lines.slice(start, Math.min(start + half, lines.length));
        }
        const text = picked.join("\n") + "\n";
        if (this.chunks.some(c => c.text === text) || this.queued.some(c => c.text === text)) {
            return;
        }
        for (const list of [this.queued, this.chunks]) {
            for (let i = list.length - 1; i >= 0; i--) {
                if (chunkSimilarity(list[i].lines, picked) > SIMILAR_PICK) {
                    if (!evict) {
                        return;
                    }
                    list.splice(i, 1);
                    this.evicted++;
                }
            }
        }
        if (this.queued.length >= this.opts.maxQueued) {
            this.queued.shift();
        }
        this.queued.push({ lines: picked, text, filename });
    }

    // Moves the oldest queued chunk into the ring; true when it changed.
    update(): boolean {
        const next = this.queued.shift();
        if (!next) {
            return false;
        }
        this.chunks.push(next);
        while (this.chunks.length > this.opts.nChunks) {
            this.chunks.shift();
        }
        return true;
    }

    // Drops chunks that repeat the lines around the cursor. Queued chunks
    // go too, or the next update would bring such a copy straight back.
    // Returns the number dropped.
    evictSimilar(cursorLines: string[]): number {
        let n = 0;
        for (const list of [this.chunks, this.queued]) {
            for (let i = list.length - 1; i >= 0; i--) {
                if (chunkSimilarity(list[i].lines, cursorLines) > SIMILAR_CURSOR) {
                    list.splice(i, 1);
                    n++;
                }
            }
        }
        this.evicted += n;
        return n;
    }

    // The ring as infill's input_extra, oldest first (arrival order), so
    // consecutive requests share the extra part and wisp's prefix cache
    // keeps it.
    extra(): { filename: string; text: string }[] {
        return this.chunks.map(c => ({ filename: c.filename, text: c.text }));
    }
}
