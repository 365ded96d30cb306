// The wisp child process and the JSON-RPC connection to it (LSP framing
// through vscode-jsonrpc). Knows nothing of VS Code: the extension passes
// in where logs go and how load progress is shown, so the lifecycle can be
// read (and tested) on its own.

import { ChildProcess, spawn } from "child_process";
import * as fs from "fs";
import * as os from "os";
import * as path from "path";
import {
    CancellationReceiverStrategy, CancellationToken, MessageConnection, ProgressType,
    RequestMessage, ResponseError, StreamMessageReader, StreamMessageWriter,
    createMessageConnection,
} from "vscode-jsonrpc/node";

// JSON-RPC / LSP's "request cancelled": wisp's answer to $/cancelRequest and
// to a superseded request. wisp's own application codes are not relied on.
export const REQUEST_CANCELLED = -32800;

export interface ServerSettings {
    serverPath: string;   // "" = find `wisp` on PATH
    model: string;
    args: string[];
    threads: number;      // 0 = wisp's default (physical cores)
}

export interface LoadProgress {
    kind: string;
    message?: string;
    percentage?: number;
}

export interface ServerHooks {
    log(line: string): void;
    // Runs `load` while showing its progress; `report` receives wisp's
    // $/progress values for the model/load request.
    withLoadProgress<T>(title: string, load: (report: (p: LoadProgress) => void) => Promise<T>): Promise<T>;
}

// Settings may name paths from the home directory, as in a shell.
export function expandHome(p: string): string {
    return p === "~" || p.startsWith("~/") ? path.join(os.homedir(), p.slice(1)) : p;
}

// A failure to start or load, with a message meant for the user.
export class StartError extends Error {}

// Resolves the wisp binary: the setting (a path, or a name looked up on
// PATH), else `wisp` on PATH. undefined when nothing executable is found.
export function findBinary(setting: string, envPath = process.env.PATH ?? ""): string | undefined {
    const name = expandHome(setting.trim()) || "wisp";
    const executable = (p: string) => {
        try {
            fs.accessSync(p, fs.constants.X_OK);
            return fs.statSync(p).isFile();
        } catch {
            return false;
        }
    };
    if (name.includes("/") || name.includes(path.sep)) {
        return executable(name) ? name : undefined;
    }
    for (const dir of envPath.split(path.delimiter)) {
        if (dir && executable(path.join(dir, name))) {
            return path.join(dir, name);
        }
    }
    return undefined;
}

export class WispServer {
    proc: ChildProcess | undefined;
    conn: MessageConnection | undefined;
    initializeResult: any;
    modelInfo: any;
    // Initialized with its model loaded: completions may be sent.
    ready = false;
    // How long stop() waits for shutdown + exit before killing the process.
    shutdownTimeoutMs = 5000;
    // How the last process ended (0 after shutdown + exit).
    lastExit: { code: number | null; signal: string | null } | undefined;
    private stopping = false;
    private lastRequestId: number | string | undefined;
    private exitListeners: ((code: number | null, signal: string | null) => void)[] = [];

    constructor(private hooks: ServerHooks) {}

    get pid(): number | undefined {
        return this.proc?.pid;
    }

    // Called when the process ends without stop() having been asked for.
    onUnexpectedExit(fn: (code: number | null, signal: string | null) => void): void {
        this.exitListeners.push(fn);
    }

    // Spawns wisp, initializes it and loads the model. Throws StartError
    // with a message for the user when any of it fails (and leaves no
    // process behind).
    async start(s: ServerSettings): Promise<void> {
        if (!s.model.trim()) {
            throw new StartError("wisp: no model configured: set `wisp.model` to a GGUF code model "
                + "with fill-in-the-middle tokens (e.g. Qwen2.5-Coder, DeepSeek-Coder, StarCoder2).");
        }
        const bin = findBinary(s.serverPath);
        if (!bin) {
            throw new StartError(s.serverPath.trim()
                ? `wisp: the server binary \`${s.serverPath}\` (setting \`wisp.serverPath\`) does not exist or is not executable.`
                : "wisp: no `wisp` binary on PATH: build it with `make` in the wisp repository and set `wisp.serverPath` to build/wisp.");
        }
        this.stopping = false;
        this.ready = false;
        this.hooks.log(`starting ${bin} ${s.args.join(" ")}`);
        const proc = spawn(bin, s.args, { stdio: ["pipe", "pipe", "pipe"] });
        this.proc = proc;
        // wisp's logs: always read, so a chatty server never blocks on a full pipe.
        let stderrTail = "";
        proc.stderr!.setEncoding("utf8");
        proc.stderr!.on("data", (chunk: string) => {
            stderrTail = (stderrTail + chunk).slice(-4000);
            for (const line of chunk.split("\n")) {
                if (line.trim()) {
                    this.hooks.log(`[wisp] ${line}`);
                }
            }
        });
        const spawned = new Promise<void>((resolve, reject) => {
            proc.once("spawn", () => resolve());
            proc.once("error", (e: NodeJS.ErrnoException) =>
                reject(new StartError(`wisp: cannot start \`${bin}\`: ${e.message}`)));
        });
        proc.once("exit", (code, signal) => {
            this.hooks.log(`wisp exited (${signal ? "signal " + signal : "status " + code})`);
            this.lastExit = { code, signal };
            const unexpected = !this.stopping && this.proc === proc;
            if (this.proc === proc) {
                this.ready = false;
                this.conn?.dispose();
                this.conn = undefined;
                this.proc = undefined;
            }
            if (unexpected) {
                for (const fn of this.exitListeners) {
                    fn(code, signal);
                }
            }
        });
        await spawned;

        const conn = createMessageConnection(
            new StreamMessageReader(proc.stdout!), new StreamMessageWriter(proc.stdin!), undefined, {
                cancellationStrategy: {
                    receiver: CancellationReceiverStrategy.Message,
                    sender: {
                        // Remembers the id of the request just sent: wisp's
                        // $/progress for model/load is keyed by it.
                        enableCancellation: (req: RequestMessage) => { this.lastRequestId = req.id ?? undefined; },
                        sendCancellation: (c: MessageConnection, id: number | string) =>
                            c.sendNotification("$/cancelRequest", { id }),
                        cleanup: () => undefined,
                    },
                },
            });
        conn.onError(([e]) => this.hooks.log(`connection error: ${e.message}`));
        conn.listen();
        this.conn = conn;

        const failed = (what: string, e: unknown): StartError => {
            const exited = this.proc !== proc;
            const detail = e instanceof ResponseError ? e.message
                : exited ? `the server exited${stderrTail.trim() ? ": " + lastLine(stderrTail) : ""}`
                : String((e as Error)?.message ?? e);
            return new StartError(`wisp: ${what}: ${detail}`);
        };
        try {
            this.initializeResult = await conn.sendRequest("initialize", {
                processId: process.pid,
                clientInfo: { name: "wisp-vscode", version: "0.1.0" },
                capabilities: {},
            });
        } catch (e) {
            const err = failed("initialize failed", e);
            await this.stop();
            throw err;
        }
        const params: Record<string, unknown> = { path: expandHome(s.model.trim()) };
        if (s.threads > 0) {
            params.threads = s.threads;
        }
        try {
            this.modelInfo = await this.hooks.withLoadProgress(
                `wisp: loading ${path.basename(s.model)}`, async report => {
                    const pending = conn.sendRequest("model/load", params);
                    const sub = this.lastRequestId === undefined ? undefined
                        : conn.onProgress(new ProgressType<LoadProgress>(), this.lastRequestId, report);
                    try {
                        return await pending;
                    } finally {
                        sub?.dispose();
                    }
                });
        } catch (e) {
            const err = failed(`cannot load the model \`${s.model}\` (setting \`wisp.model\`)`, e);
            await this.stop();
            throw err;
        }
        const tok = this.modelInfo?.tokenizer;
        if (tok && tok.fim === false) {
            await this.stop();
            throw new StartError(`wisp: the model \`${s.model}\` has no fill-in-the-middle tokens; `
                + "inline completion needs a code model with FIM tokens.");
        }
        this.ready = true;
        this.hooks.log(`model ${this.modelInfo?.name ?? s.model} loaded in ${this.modelInfo?.load_ms ?? "?"} ms`);
    }

    request<R>(method: string, params?: object, token?: CancellationToken): Promise<R> {
        if (!this.conn) {
            return Promise.reject(new Error("wisp is not running"));
        }
        const args: unknown[] = [];
        if (params !== undefined) {
            args.push(params);
        }
        if (token) {
            args.push(token);
        }
        return (this.conn.sendRequest as (m: string, ...a: unknown[]) => Promise<R>)(method, ...args);
    }

    // shutdown, exit, then wait for the process (killed if it lingers).
    async stop(timeoutMs = this.shutdownTimeoutMs): Promise<void> {
        const proc = this.proc;
        const conn = this.conn;
        this.stopping = true;
        this.ready = false;
        if (!proc) {
            return;
        }
        const exited = new Promise<void>(resolve => {
            if (proc.exitCode !== null || proc.signalCode !== null) {
                resolve();
            } else {
                proc.once("exit", () => resolve());
            }
        });
        const timer = setTimeout(() => proc.kill("SIGKILL"), timeoutMs);
        try {
            if (conn) {
                await Promise.race([
                    conn.sendRequest("shutdown").then(() => conn.sendNotification("exit")),
                    exited,
                    new Promise(r => setTimeout(r, timeoutMs / 2)),
                ]).catch(() => undefined);
            }
            proc.stdin?.end();
            await exited;
        } finally {
            clearTimeout(timer);
            if (this.proc === proc) {
                this.proc = undefined;
                this.conn = undefined;
            }
            conn?.dispose();
        }
    }
}

function lastLine(s: string): string {
    const lines = s.trim().split("\n");
    return lines[lines.length - 1];
}
