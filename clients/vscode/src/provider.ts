// The inline completion provider: one `infill` request per call, cancelled
// through VS Code's token ($/cancelRequest) and superseded per document.

import * as vscode from "vscode";
import { insertTextFor, linesOf, localContext } from "./context";
import { RingBuffer } from "./ring";
import { REQUEST_CANCELLED } from "./server";

export interface CompletionSettings {
    nPrefix: number;
    nSuffix: number;
    maxTokens: number;
    tMaxPredictMs: number;
    maxLineSuffix: number;
    ringChunkSize: number;
}

// What the last provider call ended with (shown in the status bar and kept
// for wisp.showStatus).
export interface Outcome {
    kind: "items" | "empty" | "cancelled" | "error" | "skipped";
    ms: number;               // from the provider call to its answer
    code?: number;            // JSON-RPC error code
    message?: string;
    result?: any;             // infill's result
}

export interface ProviderHost {
    enabled(): boolean;
    settings(): CompletionSettings;
    // The running server, started (or restarted) if needed; undefined when
    // it cannot run (the user has been told why).
    server(): Promise<{ request<R>(m: string, p?: object, t?: vscode.CancellationToken): Promise<R> } | undefined>;
    ring: RingBuffer;
    log(line: string): void;
    done(outcome: Outcome): void;
    // Called once the infill request is written (tests cancel from here).
    sent?(): void;
}

// How far the cursor moves (lines) before chunks further away in the same
// file are picked into the ring.
const PICK_DISTANCE = 32;
// Lines around the cursor above and below: far-away chunks come from
// between RING_SCOPE lines above and the prefix window.
const RING_SCOPE = 1024;

export class WispInlineCompletionProvider implements vscode.InlineCompletionItemProvider {
    private lastPickLine = -1e9;
    lastCallTime = 0;

    constructor(private host: ProviderHost) {}

    async provideInlineCompletionItems(document: vscode.TextDocument, position: vscode.Position,
                                       context: vscode.InlineCompletionContext,
                                       token: vscode.CancellationToken)
        : Promise<vscode.InlineCompletionItem[] | undefined> {
        const t0 = performance.now();
        this.lastCallTime = Date.now();
        const finish = (o: Omit<Outcome, "ms">) => {
            this.host.done({ ...o, ms: performance.now() - t0 });
        };
        if (!this.host.enabled() || token.isCancellationRequested) {
            return undefined;
        }
        const cfg = this.host.settings();
        const ctx = localContext(document, position.line, position.character, cfg.nPrefix, cfg.nSuffix);
        if (context.triggerKind === vscode.InlineCompletionTriggerKind.Automatic
            && ctx.lineSuffix.length > cfg.maxLineSuffix) {
            finish({ kind: "skipped", message: "text right of the cursor" });
            return undefined;
        }
        const server = await this.host.server();
        if (!server || token.isCancellationRequested) {
            return undefined;
        }

        const filename = vscode.workspace.asRelativePath(document.uri, false);
        const half = Math.floor(cfg.ringChunkSize / 4);
        this.host.ring.evictSimilar(linesOf(document, position.line - half, position.line + half));
        const params = {
            input_prefix: ctx.prefix,
            input_suffix: ctx.suffix,
            input_extra: this.host.ring.extra(),
            prompt: ctx.prompt,
            filename,
            n_indent: ctx.indent,
            t_max_predict_ms: cfg.tMaxPredictMs,
            max_tokens: cfg.maxTokens,
            temperature: 0,
            stream: false,
            supersede: document.uri.toString(),
        };
        const pending = server.request<any>("infill", params, token);
        this.host.sent?.();
        this.pickFarChunks(document, position.line, filename, cfg);
        let result: any;
        try {
            result = await pending;
        } catch (e: any) {
            if (e?.code === REQUEST_CANCELLED) {
                finish({ kind: "cancelled", code: e.code });
            } else {
                this.host.log(`infill failed: ${e?.code !== undefined ? e.code + " " : ""}${e?.message ?? e}`);
                finish({ kind: "error", code: e?.code, message: String(e?.message ?? e) });
            }
            return undefined;
        }
        if (token.isCancellationRequested) {
            finish({ kind: "cancelled", result });
            return undefined;
        }
        const typedIndent = ctx.blankLine ? document.lineAt(position.line).text.slice(0, position.character) : "";
        const next = position.line + 1 < document.lineCount ? document.lineAt(position.line + 1).text : undefined;
        const text = insertTextFor(String(result?.text ?? ""), ctx, typedIndent, next);
        if (text === undefined) {
            finish({ kind: "empty", result });
            return [];
        }
        finish({ kind: "items", result });
        return [new vscode.InlineCompletionItem(text, new vscode.Range(position, position))];
    }

    // After a jump, offers the code further above and below the cursor.
    private pickFarChunks(document: vscode.TextDocument, line: number, filename: string,
                          cfg: CompletionSettings): void {
        if (Math.abs(line - this.lastPickLine) <= PICK_DISTANCE) {
            return;
        }
        this.lastPickLine = line;
        const ring = this.host.ring;
        ring.pick(linesOf(document, line - RING_SCOPE, line - cfg.nPrefix - 1), filename, false);
        ring.pick(linesOf(document, line + cfg.nSuffix + 1, line + cfg.nSuffix + cfg.ringChunkSize),
                  filename, false);
    }
}
