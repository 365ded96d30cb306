// The part of the `vscode` API the extension uses, with VS Code's semantics
// where the extension depends on them, and every user-visible effect
// (messages, progress, status bar, output) recorded for the tests.
// install() makes require("vscode") return this module.
"use strict";
const Module = require("module");
const path = require("path");

class Disposable {
    constructor(fn) { this._fn = fn; }
    dispose() { if (this._fn) { this._fn(); this._fn = undefined; } }
}

class EventEmitter {
    constructor() {
        this._listeners = new Set();
        this.event = (listener) => {
            this._listeners.add(listener);
            return new Disposable(() => this._listeners.delete(listener));
        };
    }
    fire(value) { for (const l of [...this._listeners]) l(value); }
    dispose() { this._listeners.clear(); }
}

// VS Code's token: listeners added after cancellation still run (on a
// later tick), as with VS Code's shortcut event.
class CancellationTokenSource {
    constructor() {
        const emitter = new EventEmitter();
        let cancelled = false;
        this._cancel = () => {
            if (!cancelled) { cancelled = true; emitter.fire(undefined); }
        };
        this.token = {
            get isCancellationRequested() { return cancelled; },
            onCancellationRequested: (listener) => {
                if (cancelled) {
                    const t = setTimeout(() => listener(undefined), 0);
                    return new Disposable(() => clearTimeout(t));
                }
                return emitter.event(listener);
            },
        };
    }
    cancel() { this._cancel(); }
    dispose() {}
}

class Position {
    constructor(line, character) { this.line = line; this.character = character; }
    isEqual(o) { return this.line === o.line && this.character === o.character; }
}

class Range {
    constructor(a, b, c, d) {
        if (typeof a === "number") { this.start = new Position(a, b); this.end = new Position(c, d); }
        else { this.start = a; this.end = b; }
    }
    get isEmpty() { return this.start.isEqual(this.end); }
}

class InlineCompletionItem {
    constructor(insertText, range, command) {
        this.insertText = insertText; this.range = range; this.command = command;
    }
}

class InlineCompletionList {
    constructor(items) { this.items = items; }
}

class Uri {
    constructor(scheme, p) { this.scheme = scheme; this.path = p; this.fsPath = p; }
    static file(p) { return new Uri("file", path.resolve(p)); }
    toString() { return `${this.scheme}://${this.path}`; }
}

const state = {};

function reset() {
    state.settings = {};
    state.errors = [];
    state.warnings = [];
    state.infos = [];
    state.progress = [];          // {title, reports: []}
    state.providers = [];         // {selector, provider}
    state.commands = new Map();
    state.executed = [];
    state.outputs = [];           // every output channel created
    state.statusBarItems = [];
    state.workspaceRoot = "/work/project";
    state.onDidChangeConfiguration = new EventEmitter();
    state.onDidChangeActiveTextEditor = new EventEmitter();
    state.onDidSaveTextDocument = new EventEmitter();
    vscode.window.activeTextEditor = undefined;
}

function makeDocument(file, text, languageId = "python") {
    const uri = Uri.file(file);
    const lines = text.split("\n");
    return {
        uri, fileName: uri.fsPath, languageId, isDirty: false, version: 1,
        get lineCount() { return lines.length; },
        lineAt(i) {
            if (i < 0 || i >= lines.length) throw new Error(`Illegal value for line: ${i}`);
            return { text: lines[i], lineNumber: i };
        },
        getText() { return lines.join("\n"); },
    };
}

const vscode = {
    Disposable, EventEmitter, CancellationTokenSource, Position, Range, Uri,
    InlineCompletionItem, InlineCompletionList,
    InlineCompletionTriggerKind: { Invoke: 0, Automatic: 1 },
    StatusBarAlignment: { Left: 1, Right: 2 },
    ProgressLocation: { SourceControl: 1, Window: 10, Notification: 15 },
    window: {
        activeTextEditor: undefined,
        createOutputChannel(name) {
            const ch = {
                name, lines: [],
                append(s) { this.lines.push(s); },
                appendLine(s) { this.lines.push(s); },
                show() {}, hide() {}, clear() { this.lines = []; }, dispose() {},
            };
            state.outputs.push(ch);
            return ch;
        },
        createStatusBarItem(alignment, priority) {
            const item = { alignment, priority, text: "", tooltip: "", command: undefined, visible: false,
                           show() { this.visible = true; }, hide() { this.visible = false; }, dispose() {} };
            state.statusBarItems.push(item);
            return item;
        },
        showErrorMessage(msg) { state.errors.push(msg); return Promise.resolve(undefined); },
        showWarningMessage(msg) { state.warnings.push(msg); return Promise.resolve(undefined); },
        showInformationMessage(msg) { state.infos.push(msg); return Promise.resolve(undefined); },
        withProgress(options, task) {
            const rec = { title: options.title, location: options.location, reports: [] };
            state.progress.push(rec);
            const cts = new CancellationTokenSource();
            return Promise.resolve(task({ report: (v) => rec.reports.push(v) }, cts.token));
        },
        onDidChangeActiveTextEditor: (l) => state.onDidChangeActiveTextEditor.event(l),
    },
    workspace: {
        getConfiguration(section) {
            return {
                get(key, def) {
                    const v = state.settings[`${section}.${key}`];
                    return v === undefined ? def : v;
                },
            };
        },
        asRelativePath(uri) {
            const p = typeof uri === "string" ? uri : uri.fsPath;
            return p.startsWith(state.workspaceRoot + "/") ? p.slice(state.workspaceRoot.length + 1) : p;
        },
        onDidChangeConfiguration: (l) => state.onDidChangeConfiguration.event(l),
        onDidSaveTextDocument: (l) => state.onDidSaveTextDocument.event(l),
    },
    languages: {
        registerInlineCompletionItemProvider(selector, provider) {
            const rec = { selector, provider };
            state.providers.push(rec);
            return new Disposable(() => { state.providers = state.providers.filter(r => r !== rec); });
        },
    },
    commands: {
        registerCommand(id, fn) {
            state.commands.set(id, fn);
            return new Disposable(() => state.commands.delete(id));
        },
        executeCommand(id, ...args) {
            state.executed.push([id, ...args]);
            const fn = state.commands.get(id);
            return Promise.resolve(fn ? fn(...args) : undefined);
        },
    },
};

// Changes settings the way the Settings editor does: the values, then the event.
function setSettings(values) {
    Object.assign(state.settings, values);
    const keys = Object.keys(values);
    state.onDidChangeConfiguration.fire({
        affectsConfiguration: (s) => keys.some(k => k === s || k.startsWith(s + ".")),
    });
}

let installed = false;
function install() {
    if (installed) return;
    installed = true;
    const resolve = Module._resolveFilename;
    Module._resolveFilename = function (request, ...rest) {
        if (request === "vscode") return __filename;
        return resolve.call(this, request, ...rest);
    };
}

reset();
module.exports = vscode;
Object.assign(module.exports, { __test: { state, reset, install, makeDocument, setSettings } });
