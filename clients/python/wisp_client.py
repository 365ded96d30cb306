#!/usr/bin/python3
"""wisp_client.py - a small Python client for wisp (stdlib only).

As a library:

    from wisp_client import Wisp
    with Wisp(["build/wisp", "--model", "models/stories260K.gguf"]) as w:
        for piece in w.generate_stream("Once upon a time", max_tokens=100):
            print(piece, end="", flush=True)
        print(w.call("status")["kv_cache"])

As a command (streams a completion to the terminal):

    clients/python/wisp_client.py --model models/stories260K.gguf "Once upon a time"

It spawns wisp as a child process, writes newline-delimited JSON-RPC 2.0 to
its stdin and reads replies and notifications from its stdout; wisp's logs
stay on stderr. One reader thread routes each message to the request it
belongs to, so several requests may be in flight at once.
"""
import argparse
import itertools
import json
import os
import queue
import subprocess
import sys
import threading


class WispError(Exception):
    """A JSON-RPC error answer: code, message and data as wisp sent them."""

    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.data = error.get("data")


class Wisp:
    def __init__(self, argv, stderr=None):
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, bufsize=0)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._waiters = {}          # id -> Queue of messages for that request
        self.notifications = queue.Queue()   # $/progress and others
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            msg = json.loads(line)
            key = msg.get("id")
            if key is None and msg.get("method") == "$/stream":
                key = msg["params"]["id"]
            with self._lock:
                q = self._waiters.get(key)
            (q or self.notifications).put(msg)
        with self._lock:
            for q in self._waiters.values():
                q.put(None)

    def _send(self, obj):
        self.proc.stdin.write((json.dumps(obj) + "\n").encode())
        self.proc.stdin.flush()

    def _start(self, method, params):
        rid = next(self._ids)
        q = queue.Queue()
        with self._lock:
            self._waiters[rid] = q
        self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        return rid, q

    def _finish(self, rid, msg):
        with self._lock:
            self._waiters.pop(rid, None)
        if msg is None:
            raise EOFError("wisp exited before answering")
        if "error" in msg:
            raise WispError(msg["error"])
        return msg["result"]

    def call(self, method, params=None):
        """Sends a request and returns its result (raises WispError)."""
        rid, q = self._start(method, params)
        while True:
            msg = q.get()
            if msg is None or "id" in msg:
                return self._finish(rid, msg)

    def generate_stream(self, prompt, **params):
        """Yields the text of each $/stream piece; returns the final result
        as the generator's value (StopIteration.value)."""
        rid, q = self._start("generate", dict(params, prompt=prompt, stream=True))
        while True:
            msg = q.get()
            if msg is None or "id" in msg:
                return self._finish(rid, msg)
            yield msg["params"]["text"]

    def cancel(self, rid):
        self._send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rid}})

    def close(self):
        if self.proc.poll() is None:
            try:
                self.call("shutdown")
                self._send({"jsonrpc": "2.0", "method": "exit"})
                self.proc.stdin.close()
            except (BrokenPipeError, EOFError):
                pass
            self.proc.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    root = os.path.dirname(os.path.dirname(here))
    ap = argparse.ArgumentParser(description="Stream a completion from wisp.")
    ap.add_argument("prompt", nargs="?", default="Once upon a time")
    ap.add_argument("--wisp", default=os.path.join(root, "build", "wisp"), help="the wisp binary")
    ap.add_argument("--model", default=os.path.join(root, "models", "stories260K.gguf"))
    ap.add_argument("--max-tokens", type=int, default=256)
    ap.add_argument("--temperature", type=float, default=0.8)
    ap.add_argument("--seed", type=int)
    ap.add_argument("--threads", type=int)
    args = ap.parse_args()
    argv = [args.wisp, "--model", args.model, "--log-level", "warn"]
    if args.threads:
        argv += ["--threads", str(args.threads)]
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.seed is not None:
        params["seed"] = args.seed
    with Wisp(argv) as w:
        sys.stdout.write(args.prompt)
        gen = w.generate_stream(args.prompt, **params)
        try:
            while True:
                sys.stdout.write(next(gen))
                sys.stdout.flush()
        except StopIteration as done:
            r = done.value
            t = r["timings"]
            sys.stdout.write("\n")
            sys.stderr.write(f"[{r['usage']['completion_tokens']} tokens, {r['finish_reason']}, "
                             f"ttft {t['ttft_ms']:.1f} ms, "
                             f"{t['decode_tokens_per_s']:.0f} tokens/s]\n")


if __name__ == "__main__":
    main()
