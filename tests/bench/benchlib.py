"""What the serving benchmarks share: a wisp process driven over stdio, the
processes a script started (and only those) stopped on exit or on a signal,
random prompts of plain tokens, and the ~200M Qwen2-layout model
synthesized by tools/synth.

batched.py and serve.py import it from their own directory; standard
library only, for /usr/bin/python3.
"""
import json
import os
import pathlib
import signal
import subprocess
import sys
import threading
import time

ROOT = pathlib.Path(__file__).resolve().parents[2]
SHARED = pathlib.Path(os.environ.get("WISP_SHARED", str(ROOT.parent / "shared")))
DEFAULT_BIN = os.environ.get("WISP_BIN", str(ROOT / "build" / "wisp"))
DEFAULT_SYNTH = str(ROOT / "build" / "tools" / "synth")
DEFAULT_VOCAB = str(SHARED / "vocab" / "ggml-vocab-deepseek-coder.gguf")

STARTED = []  # the processes this script started, and only those, are stopped


def stop_started():
    for p in STARTED:
        if p.poll() is None:
            try:
                p.terminate()
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
            except ProcessLookupError:
                pass


def stop_on_signals():
    """SIGINT and SIGTERM stop what this script started, then exit."""

    def on_signal(signum, frame):
        stop_started()
        sys.exit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


class Wisp:
    """One wisp process over stdio: requests by id, their answers, and the
    arrival time and token count of every $/stream piece."""

    def __init__(self, binary, args):
        self.proc = subprocess.Popen([binary, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, bufsize=0)
        STARTED.append(self.proc)
        self.cv = threading.Condition()
        self.answers = {}   # id -> (monotonic time, message)
        self.first = {}     # id -> monotonic time of the first $/stream
        self.arrivals = {}  # id -> [(time, tokens)] of its $/stream pieces
        self.next_id = 1
        self.closed = False
        self.stderr = bytearray()
        self.wlock = threading.Lock()
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            now = time.monotonic()
            m = json.loads(line)
            with self.cv:
                if m.get("method") == "$/stream":
                    rid = m["params"]["id"]
                    self.first.setdefault(rid, now)
                    self.arrivals.setdefault(rid, []).append((now, len(m["params"]["tokens"])))
                    self.cv.notify_all()
                elif "id" in m and "method" not in m:
                    self.answers[m["id"]] = (now, m)
                    self.cv.notify_all()
        with self.cv:
            self.closed = True
            self.cv.notify_all()

    def _drain(self):
        for chunk in iter(lambda: self.proc.stderr.read(65536), b""):
            self.stderr += chunk
            del self.stderr[:-20000]

    def send(self, method, params=None):
        with self.wlock:
            rid = self.next_id
            self.next_id += 1
            msg = {"jsonrpc": "2.0", "id": rid, "method": method}
            if params is not None:
                msg["params"] = params
            self.proc.stdin.write((json.dumps(msg) + "\n").encode())
        return rid

    def wait_for(self, pred, timeout, what):
        deadline = time.monotonic() + timeout
        with self.cv:
            while not pred():
                if self.closed:
                    raise SystemExit("wisp exited:\n" + self.stderr.decode("utf-8", "replace"))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise SystemExit(f"wisp: no {what} within {timeout}s")
                self.cv.wait(left)

    def wait_message(self, rid, timeout):
        """(arrival time, the whole answer), error or not."""
        self.wait_for(lambda: rid in self.answers, timeout, f"answer to request {rid}")
        with self.cv:
            return self.answers.pop(rid)

    def wait(self, rid, timeout):
        """(arrival time, result); an error answer ends the script."""
        t, m = self.wait_message(rid, timeout)
        if "error" in m:
            raise SystemExit(f"wisp request {rid} failed: {m['error']}")
        return t, m["result"]

    def call(self, method, params=None, timeout=600):
        return self.wait(self.send(method, params), timeout)[1]

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def token_range(vocab):
    """Plain tokens only: skip the low ids (control and byte tokens in most
    vocabularies) and the top of the vocabulary (added specials)."""
    lo = min(300, vocab // 4)
    return lo, max(lo + 1, min(vocab - 300, 30000))


def random_prompt(rng, n, lo, hi, bos=None):
    return ([bos] if bos is not None else []) + [rng.randrange(lo, hi) for _ in range(n)]


def synthesize_qwen2_200m(path, synth, vocab, kind, extra):
    """The ~200M Qwen2 layout (dim 1024, 16 layers, 16/2 heads, ffn 2816,
    tied output) with kind (["--type", T] or ["--recipe", R]) and extra
    synth arguments, written at path through a temporary file."""
    cmd = [synth, "--arch", "qwen2", "--layers", "16", "--embd", "1024", "--heads", "16",
           "--kv-heads", "2", "--ff", "2816", "--vocab", vocab, "--tied", *kind, *extra,
           "--out", path + ".tmp"]
    print("synthesizing:", " ".join(cmd), file=sys.stderr)
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, timeout=1800)
    os.replace(path + ".tmp", path)


def fmt(v, spec=".1f"):
    return "-" if v is None else format(v, spec)


def load_avg():
    return os.getloadavg()[0]
