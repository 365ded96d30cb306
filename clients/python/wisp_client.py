#!/usr/bin/python3
"""wisp_client.py - a small Python client for wisp (stdlib only).

As a library:

    from wisp_client import Wisp
    with Wisp(["build/wisp", "--model", "models/stories260K.gguf"]) as w:
        stream = w.generate_stream("Once upon a time", max_tokens=100)
        for piece in stream:
            print(piece, end="", flush=True)
        print(stream.result["usage"])         # the final answer
        print(w.call("status")["kv_cache"])

A stream is a Stream object: iterate it for text pieces; `stream.id` is the
request's JSON-RPC id, `stream.cancel()` cancels it, and leaving the loop
early (break, an exception, `close()`, garbage collection) cancels it too, so
wisp never keeps generating for nobody. Every call takes a `timeout` in
seconds (None: wait as long as it takes); a call made after wisp died, or
pending when it dies, raises WispGone instead of hanging.

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
import time

CANCELLED = -32800


class WispError(Exception):
    """A JSON-RPC error answer: code, message and data as wisp sent them."""

    def __init__(self, error):
        super().__init__(f"{error.get('code')}: {error.get('message')}")
        self.code = error.get("code")
        self.message = error.get("message")
        self.data = error.get("data")


class WispGone(EOFError):
    """wisp exited (or closed its stdout) before answering."""


class WispTimeout(TimeoutError):
    """No answer within the timeout; the request was cancelled."""


_GONE = object()   # queued to every waiter when the reader ends


class Stream:
    """The pieces of one streaming request (generate or infill)."""

    def __init__(self, client, rid, q, timeout):
        self._client = client
        self.id = rid
        self._q = q
        self._timeout = timeout
        self.result = None      # the final result, once the stream ended
        self.pieces = []        # every $/stream params received
        self._done = False

    def __iter__(self):
        return self

    def __next__(self):
        if self._done:
            raise StopIteration
        try:
            msg = self._client._next(self.id, self._q, self._timeout)
        except BaseException:
            self.close()
            raise
        if "method" in msg:
            self.pieces.append(msg["params"])
            return msg["params"]["text"]
        self._done = True
        self.result = self._client._finish(self.id, msg)
        raise StopIteration

    def cancel(self):
        """Asks wisp to stop; the stream then ends with WispError(-32800)."""
        if not self._done:
            self._client.cancel(self.id)

    def close(self):
        """Stops listening; cancels the request if it is still running."""
        if not self._done:
            self._done = True
            self._client.cancel(self.id)
            self._client._forget(self.id)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass


class Wisp:
    def __init__(self, argv, stderr=None, timeout=None):
        """Starts wisp (argv: its command line). timeout: the default for
        every call, in seconds (None: no limit)."""
        self.proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=stderr, bufsize=0)
        self.timeout = timeout
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()
        self._waiters = {}          # id -> Queue of messages for that request
        self._gone = False          # the reader ended: no answer will ever come
        self.notifications = queue.Queue()   # $/progress and others
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    # ---- reading
    def _read(self):
        try:
            for line in self.proc.stdout:
                try:
                    msg = json.loads(line)
                except ValueError:
                    continue
                if not isinstance(msg, dict):
                    continue
                key = msg.get("id")
                if key is None and msg.get("method") == "$/stream":
                    key = msg["params"]["id"]
                with self._lock:
                    q = self._waiters.get(key)
                (q or self.notifications).put(msg)
        except (OSError, ValueError):
            pass
        finally:
            # Under the lock with _gone set, so a waiter registered later
            # sees _gone instead of waiting for a message that never comes.
            with self._lock:
                self._gone = True
                for q in self._waiters.values():
                    q.put(_GONE)

    def _next(self, rid, q, timeout):
        timeout = self.timeout if timeout is None else timeout
        try:
            msg = q.get(timeout=timeout)
        except queue.Empty:
            self.cancel(rid)
            self._forget(rid)
            raise WispTimeout(f"request {rid}: no answer within {timeout} s (cancelled)")
        if msg is _GONE:
            self._forget(rid)
            raise WispGone(self._why_gone(rid))
        return msg

    def _why_gone(self, rid):
        rc = self.proc.poll()
        how = f"exit status {rc}" if rc is not None else "stdout closed"
        return f"wisp is gone ({how}) before answering request {rid}"

    # ---- writing
    def _send(self, obj):
        data = (json.dumps(obj) + "\n").encode()
        try:
            with self._send_lock:
                self.proc.stdin.write(data)
                self.proc.stdin.flush()
        except (BrokenPipeError, ValueError, OSError):
            raise WispGone("wisp is gone: its stdin is closed") from None

    def _start(self, method, params):
        rid = next(self._ids)
        q = queue.Queue()
        with self._lock:
            if self._gone:
                raise WispGone(self._why_gone(rid))
            self._waiters[rid] = q
        try:
            self._send({"jsonrpc": "2.0", "id": rid, "method": method, "params": params or {}})
        except WispGone:
            self._forget(rid)
            raise
        return rid, q

    def _forget(self, rid):
        with self._lock:
            self._waiters.pop(rid, None)

    def _finish(self, rid, msg):
        self._forget(rid)
        if "error" in msg:
            raise WispError(msg["error"])
        return msg["result"]

    # ---- requests
    def call(self, method, params=None, timeout=None):
        """Sends a request and returns its result (raises WispError,
        WispGone, WispTimeout)."""
        rid, q = self._start(method, params)
        while True:
            msg = self._next(rid, q, timeout)
            if "method" not in msg:
                return self._finish(rid, msg)

    def generate(self, prompt, timeout=None, **params):
        """The whole result of a generate request."""
        return self.call("generate", dict(params, prompt=prompt, stream=False), timeout)

    def generate_stream(self, prompt, timeout=None, **params):
        """A Stream of the text pieces of a generate request."""
        rid, q = self._start("generate", dict(params, prompt=prompt, stream=True))
        return Stream(self, rid, q, timeout)

    def infill(self, prefix, suffix="", timeout=None, **params):
        """The whole result of an infill (fill-in-the-middle) request."""
        p = dict(params, input_prefix=prefix, input_suffix=suffix, stream=False)
        return self.call("infill", p, timeout)

    def infill_stream(self, prefix, suffix="", timeout=None, **params):
        """A Stream of the text pieces of an infill request."""
        p = dict(params, input_prefix=prefix, input_suffix=suffix, stream=True)
        rid, q = self._start("infill", p)
        return Stream(self, rid, q, timeout)

    def cancel(self, rid):
        """$/cancelRequest for the request with id rid (a no-op once wisp
        is gone)."""
        try:
            self._send({"jsonrpc": "2.0", "method": "$/cancelRequest", "params": {"id": rid}})
        except WispGone:
            pass

    def close(self, timeout=30):
        """shutdown + exit, then waits for wisp; kills it if it hangs."""
        if self.proc.poll() is None:
            try:
                self.call("shutdown", timeout=timeout)
                self._send({"jsonrpc": "2.0", "method": "exit"})
            except (WispGone, WispTimeout, WispError):
                pass
            try:
                self.proc.stdin.close()
            except OSError:
                pass
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(timeout)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def main(argv=None):
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
    ap.add_argument("--timeout", type=float, help="seconds to wait for the answer")
    args = ap.parse_args(argv)
    if not os.path.exists(args.wisp):
        sys.stderr.write(f"wisp_client: {args.wisp}: no such program (build it with make)\n")
        return 2
    if not os.path.exists(args.model):
        sys.stderr.write(f"wisp_client: {args.model}: no such model file\n")
        return 2
    cmd = [args.wisp, "--model", args.model, "--log-level", "warn"]
    if args.threads:
        cmd += ["--threads", str(args.threads)]
    params = {"max_tokens": args.max_tokens, "temperature": args.temperature}
    if args.seed is not None:
        params["seed"] = args.seed
    w = Wisp(cmd, stderr=subprocess.PIPE)
    errs = []
    err_reader = threading.Thread(target=lambda: errs.append(w.proc.stderr.read()), daemon=True)
    err_reader.start()
    try:
        sys.stdout.write(args.prompt)
        stream = w.generate_stream(args.prompt, timeout=args.timeout, **params)
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        r = stream.result
        t = r["timings"]
        sys.stdout.write("\n")
        sys.stderr.write(f"[{r['usage']['completion_tokens']} tokens, {r['finish_reason']}, "
                         f"ttft {t['ttft_ms']:.1f} ms, "
                         f"{t['decode_tokens_per_s']:.0f} tokens/s]\n")
        return 0
    except KeyboardInterrupt:
        sys.stdout.write("\n")
        sys.stderr.write("wisp_client: interrupted\n")
        return 130
    except (WispError, WispGone, WispTimeout) as e:
        sys.stdout.write("\n")
        if isinstance(e, WispGone):
            err_reader.join(5)   # what wisp said on its way out
        detail = b"".join(x for x in errs if x).decode("utf-8", "replace").strip()
        sys.stderr.write(f"wisp_client: {e}\n" + (detail + "\n" if detail else ""))
        return 1
    finally:
        try:
            w.close(timeout=10)
        except KeyboardInterrupt:
            w.proc.kill()


if __name__ == "__main__":
    sys.exit(main())
