// Entry point: settings, the server's lifecycle (lazy start, restart after a
// crash), the status bar, the commands and the ring buffer's feeds.

import * as path from "path";
import * as vscode from "vscode";
import { linesOf } from "./context";
import { CompletionSettings, Outcome, WispInlineCompletionProvider } from "./provider";
import { RingBuffer } from "./ring";
import { ServerSettings, StartError, WispServer } from "./server";

// Crashes tolerated within RESTART_WINDOW_MS before giving up until the
// user restarts by hand (a model that crashes wisp would otherwise loop).
const MAX_RESTARTS = 3;
const RESTART_WINDOW_MS = 60_000;
// The ring takes a queued chunk only after this long without a completion
// request, so the prompt prefix stays put while the user types.
const RING_IDLE_MS = 3000;

function serverSettings(): ServerSettings {
    const c = vscode.workspace.getConfiguration("wisp");
    return {
        serverPath: c.get<string>("serverPath", ""),
        model: c.get<string>("model", ""),
        args: c.get<string[]>("args", []),
        threads: c.get<number>("threads", 0),
    };
}

function completionSettings(): CompletionSettings & { ringNChunks: number; ringUpdateMs: number } {
    const c = vscode.workspace.getConfiguration("wisp");
    return {
        nPrefix: c.get<number>("nPrefix", 256),
        nSuffix: c.get<number>("nSuffix", 64),
        maxTokens: c.get<number>("maxTokens", 128),
        tMaxPredictMs: c.get<number>("tMaxPredictMs", 1000),
        maxLineSuffix: c.get<number>("maxLineSuffix", 8),
        ringChunkSize: c.get<number>("ringChunkSize", 64),
        ringNChunks: c.get<number>("ringNChunks", 16),
        ringUpdateMs: c.get<number>("ringUpdateMs", 1000),
    };
}

export class Extension {
    readonly output: vscode.OutputChannel;
    readonly statusBar: vscode.StatusBarItem;
    readonly server: WispServer;
    readonly ring: RingBuffer;
    readonly provider: WispInlineCompletionProvider;
    enabled: boolean;
    lastOutcome: Outcome | undefined;
    // Called as each infill request is written: lets a caller (the tests,
    // the benchmark) act while it is in flight.
    onRequestSent: (() => void) | undefined;
    onCompletionDone: ((o: Outcome) => void) | undefined;
    restarts: number[] = [];
    private starting: Promise<boolean> | undefined;
    private failed = false;          // the last start failed: wait for a setting change or wisp.restart
    private disposed = false;

    constructor(private context: vscode.ExtensionContext) {
        this.output = vscode.window.createOutputChannel("wisp");
        this.statusBar = vscode.window.createStatusBarItem(vscode.StatusBarAlignment.Right, 100);
        this.statusBar.command = "wisp.showStatus";
        this.enabled = vscode.workspace.getConfiguration("wisp").get<boolean>("enabled", true);
        const cs = completionSettings();
        this.ring = new RingBuffer({ nChunks: cs.ringNChunks, chunkSize: cs.ringChunkSize, maxQueued: 16 });
        this.server = new WispServer({
            log: line => this.log(line),
            withLoadProgress: (title, load) => Promise.resolve(vscode.window.withProgress(
                { location: vscode.ProgressLocation.Notification, title, cancellable: false },
                async progress => {
                    let last = 0;
                    return load(p => {
                        const pct = typeof p.percentage === "number" ? p.percentage : undefined;
                        progress.report({ message: p.message, increment: pct === undefined ? undefined : pct - last });
                        if (pct !== undefined) {
                            last = pct;
                        }
                    });
                })),
        });
        this.server.onUnexpectedExit((code, signal) => this.onCrash(code, signal));
        this.provider = new WispInlineCompletionProvider({
            enabled: () => this.enabled,
            settings: () => completionSettings(),
            server: async () => (await this.ensureServer()) ? this.server : undefined,
            ring: this.ring,
            log: line => this.log(line),
            done: o => this.onOutcome(o),
            sent: () => this.onRequestSent?.(),
        });
        this.showIdle();
        this.statusBar.show();
    }

    log(line: string): void {
        this.output.appendLine(`${new Date().toISOString().slice(11, 23)} ${line}`);
    }

    // Starts the server unless it runs (or is starting); false when it cannot.
    ensureServer(): Promise<boolean> {
        if (this.server.ready) {
            return Promise.resolve(true);
        }
        if (this.failed || this.disposed) {
            return Promise.resolve(false);
        }
        if (!this.starting) {
            this.starting = this.start().finally(() => { this.starting = undefined; });
        }
        return this.starting;
    }

    private async start(): Promise<boolean> {
        this.statusBar.text = "$(sync~spin) wisp";
        this.statusBar.tooltip = "wisp: starting";
        try {
            await this.server.start(serverSettings());
            this.failed = false;
            this.showIdle();
            return true;
        } catch (e) {
            this.failed = true;
            if (this.disposed) {
                return false;      // stopped by deactivate while starting
            }
            const msg = e instanceof StartError ? e.message : `wisp: ${(e as Error)?.message ?? e}`;
            this.log(msg);
            this.statusBar.text = "$(error) wisp";
            this.statusBar.tooltip = msg;
            void vscode.window.showErrorMessage(msg, "Open Settings", "Show Log").then(choice => {
                if (choice === "Open Settings") {
                    void vscode.commands.executeCommand("workbench.action.openSettings", "wisp");
                } else if (choice === "Show Log") {
                    this.output.show(true);
                }
            });
            return false;
        }
    }

    async restart(): Promise<boolean> {
        this.failed = false;
        if (this.starting) {
            await this.starting;
        }
        await this.server.stop();
        return this.ensureServer();
    }

    private onCrash(code: number | null, signal: string | null): void {
        if (this.disposed) {
            return;
        }
        const now = Date.now();
        this.restarts = this.restarts.filter(t => now - t < RESTART_WINDOW_MS);
        const how = signal ? `was killed by ${signal}` : `exited with status ${code}`;
        if (this.restarts.length >= MAX_RESTARTS) {
            this.failed = true;
            const msg = `wisp ${how} ${MAX_RESTARTS + 1} times within a minute; not restarting it (run "wisp: Restart Server" when fixed).`;
            this.log(msg);
            this.statusBar.text = "$(error) wisp";
            this.statusBar.tooltip = msg;
            void vscode.window.showErrorMessage(msg, "Show Log").then(c => c && this.output.show(true));
            return;
        }
        this.restarts.push(now);
        const msg = `wisp ${how}; restarting it.`;
        this.log(msg);
        void vscode.window.showWarningMessage(msg);
        void this.ensureServer();
    }

    private onOutcome(o: Outcome): void {
        this.lastOutcome = o;
        this.onCompletionDone?.(o);
        if (o.kind === "error") {
            this.statusBar.text = `$(warning) wisp`;
            this.statusBar.tooltip = `wisp: last request failed: ${o.message}`;
            return;
        }
        const r = o.result;
        if (!r) {
            return;
        }
        const u = r.usage ?? {};
        const cached = u.prompt_tokens ? Math.round((100 * (u.cached_tokens ?? 0)) / u.prompt_tokens) : 0;
        this.statusBar.text = `$(sparkle) ${this.modelName()} ${Math.round(o.ms)} ms`;
        this.statusBar.tooltip = `wisp: ${u.prompt_tokens ?? 0} prompt tokens (${cached}% cached), `
            + `${u.completion_tokens ?? 0} generated in ${Math.round(r.timings?.total_ms ?? 0)} ms `
            + `(finish: ${r.finish_reason}); ${Math.round(o.ms)} ms from request to items`;
    }

    modelName(): string {
        const info = this.server.modelInfo;
        return info?.name || (info?.path ? path.basename(info.path) : "wisp");
    }

    showIdle(): void {
        if (!this.enabled) {
            this.statusBar.text = "$(circle-slash) wisp";
            this.statusBar.tooltip = "wisp: inline completion is off (wisp.toggle)";
        } else if (this.server.ready) {
            this.statusBar.text = `$(sparkle) ${this.modelName()}`;
            this.statusBar.tooltip = "wisp: ready";
        } else {
            this.statusBar.text = "$(sparkle) wisp";
            this.statusBar.tooltip = "wisp: starts with the first completion";
        }
    }

    toggle(): void {
        this.enabled = !this.enabled;
        this.log(`inline completion ${this.enabled ? "on" : "off"}`);
        this.showIdle();
    }

    async showStatus(): Promise<void> {
        this.output.show(true);
        if (!(await this.ensureServer())) {
            this.log("status: wisp is not running");
            return;
        }
        try {
            const s = await this.server.request<any>("status");
            this.output.appendLine(`wisp status (pid ${this.server.pid}):`);
            this.output.appendLine(JSON.stringify(s, null, 2));
            this.output.appendLine(`ring buffer: ${this.ring.chunks.length} chunks, `
                + `${this.ring.queued.length} queued, ${this.ring.evicted} evicted`);
            if (this.lastOutcome) {
                this.output.appendLine(`last completion: ${this.lastOutcome.kind} in ${Math.round(this.lastOutcome.ms)} ms`);
            }
        } catch (e) {
            this.log(`status failed: ${(e as Error)?.message ?? e}`);
        }
    }

    // Picks the code around the cursor of a saved (clean) document.
    pickAroundCursor(editor: vscode.TextEditor | undefined): void {
        if (!editor || editor.document.isDirty || editor.document.uri.scheme !== "file") {
            return;
        }
        const half = Math.floor(completionSettings().ringChunkSize / 2);
        const line = editor.selection.active.line;
        this.ring.pick(linesOf(editor.document, line - half, line + half),
                       vscode.workspace.asRelativePath(editor.document.uri, false), true);
    }

    ringTick(): void {
        if (Date.now() - this.provider.lastCallTime >= RING_IDLE_MS) {
            this.ring.update();
        }
    }

    async dispose(): Promise<void> {
        this.disposed = true;
        await this.server.stop();
        this.statusBar.dispose();
        this.output.dispose();
    }
}

let current: Extension | undefined;

export function activate(context: vscode.ExtensionContext): Extension {
    const ext = new Extension(context);
    current = ext;
    const sub = context.subscriptions;
    sub.push(vscode.languages.registerInlineCompletionItemProvider({ pattern: "**" }, ext.provider));
    sub.push(vscode.commands.registerCommand("wisp.restart", () => ext.restart()));
    sub.push(vscode.commands.registerCommand("wisp.showStatus", () => ext.showStatus()));
    sub.push(vscode.commands.registerCommand("wisp.toggle", () => ext.toggle()));
    sub.push(vscode.workspace.onDidChangeConfiguration(e => {
        const cs = completionSettings();
        ext.ring.opts.nChunks = cs.ringNChunks;
        ext.ring.opts.chunkSize = cs.ringChunkSize;
        if (["serverPath", "model", "args", "threads"].some(k => e.affectsConfiguration(`wisp.${k}`))) {
            ext.log("server settings changed: restarting wisp");
            void ext.restart();
        }
    }));
    let lastEditor = vscode.window.activeTextEditor;
    sub.push(vscode.window.onDidChangeActiveTextEditor(editor => {
        ext.pickAroundCursor(lastEditor);
        ext.pickAroundCursor(editor);
        lastEditor = editor;
    }));
    sub.push(vscode.workspace.onDidSaveTextDocument(doc => {
        const editor = vscode.window.activeTextEditor;
        if (editor && editor.document === doc) {
            ext.pickAroundCursor(editor);
        } else {
            ext.ring.pick(linesOf(doc, 0, doc.lineCount - 1), vscode.workspace.asRelativePath(doc.uri, false), true);
        }
    }));
    const timer = setInterval(() => ext.ringTick(), completionSettings().ringUpdateMs);
    timer.unref?.();
    sub.push({ dispose: () => clearInterval(timer) });
    return ext;
}

export async function deactivate(): Promise<void> {
    const ext = current;
    current = undefined;
    await ext?.dispose();
}
