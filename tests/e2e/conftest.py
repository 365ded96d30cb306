"""End-to-end harness: drives the real wisp binary over pipes.

The `wisp` fixture starts `$WISP_BIN` (default build/wisp) and returns a
factory; each client speaks ndjson or LSP framing, reads stdout on a thread,
and checks EVERY message wisp writes: the framing must be exact, the bytes
valid JSON, and the message valid against protocol/schema/ (responses by the
method of the request they answer, notifications by their method). Any
violation fails the test that caused it.
"""
import json
import os
import pathlib
import queue
import signal
import subprocess
import threading
import time

import pytest
from jsonschema import Draft202012Validator, RefResolver

ROOT = pathlib.Path(__file__).resolve().parents[2]
SCHEMA_DIR = ROOT / "protocol" / "schema"
WISP_BIN = os.environ.get("WISP_BIN", str(ROOT / "build" / "wisp"))
TIMEOUT = float(os.environ.get("WISP_TEST_TIMEOUT", "20"))


def schema_name(method):
    """'model/load' -> 'model_load', '$/stream' -> 'stream'."""
    return method.replace("$/", "").replace("/", "_")


class Schemas:
    def __init__(self):
        self.store = {}
        for f in SCHEMA_DIR.glob("*.json"):
            s = json.loads(f.read_text())
            self.store[s["$id"]] = s
            self.store[f.name] = s
        self.validators = {}

    def has(self, name):
        return name in self.store

    def validator(self, name):
        v = self.validators.get(name)
        if v is None:
            s = self.store[name]
            v = Draft202012Validator(s, resolver=RefResolver.from_schema(s, store=self.store))
            self.validators[name] = v
        return v

    def errors(self, name, instance):
        return [f"{name}: {e.message} at {list(e.absolute_path)}"
                for e in self.validator(name).iter_errors(instance)]


SCHEMAS = Schemas()


class Client:
    """One wisp process and its pipes."""

    def __init__(self, args=(), framing="ndjson", env=None, stderr_to=None):
        self.framing = framing
        full_env = dict(os.environ)
        full_env.update(env or {})
        self.proc = subprocess.Popen([WISP_BIN, *args], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     env=full_env, bufsize=0)
        self.messages = queue.Queue()
        self.violations = []
        self.methods = {}          # request id (as JSON text) -> method
        self.stdout_bytes = bytearray()
        self.stderr = bytearray()
        self.read_gate = threading.Event()
        self.read_gate.set()
        self.next_id = 1
        self.backlog = []          # messages received while waiting for another
        self._reader = threading.Thread(target=self._read_stdout, daemon=True)
        self._reader.start()
        self._errreader = threading.Thread(target=self._read_stderr, daemon=True)
        self._errreader.start()

    # ------------------------------------------------------------ reading
    def _read_stdout(self):
        fd = self.proc.stdout.fileno()
        buf = bytearray()
        while True:
            self.read_gate.wait()
            data = os.read(fd, 65536)
            if not data:
                break
            self.stdout_bytes += data
            buf += data
            while True:
                body = self._take_frame(buf)
                if body is None:
                    break
                self._accept(body)
        if buf.strip():
            self.violations.append(f"stdout ended inside a message: {bytes(buf[:200])!r}")
        self.messages.put(None)

    def _take_frame(self, buf):
        if self.framing == "ndjson":
            nl = buf.find(b"\n")
            if nl < 0:
                return None
            body = bytes(buf[:nl])
            del buf[:nl + 1]
            return body
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        header = bytes(buf[:end]).decode("ascii", "replace")
        if not header.startswith("Content-Length: ") or "\r\n" in header:
            self.violations.append(f"bad LSP header from wisp: {header!r}")
            del buf[:end + 4]
            return b""
        n = int(header[len("Content-Length: "):])
        if len(buf) < end + 4 + n:
            return None
        body = bytes(buf[end + 4:end + 4 + n])
        del buf[:end + 4 + n]
        return body

    def _read_stderr(self):
        fd = self.proc.stderr.fileno()
        while True:
            data = os.read(fd, 65536)
            if not data:
                break
            self.stderr += data

    def _accept(self, body):
        try:
            msg = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            self.violations.append(f"stdout carried something that is not JSON ({e}): {body[:200]!r}")
            return
        self.violations.extend(self.check(msg))
        self.messages.put(msg)

    def check(self, msg):
        """Schema errors of one message wisp wrote (a list of strings)."""
        if isinstance(msg, list):
            if not msg:
                return ["wisp wrote an empty batch answer"]
            errs = []
            for m in msg:
                if not isinstance(m, dict) or "method" in m:
                    errs.append(f"batch answer member is not a response: {m!r}")
                else:
                    errs.extend(self.check(m))
            return errs
        if not isinstance(msg, dict):
            return [f"message is not an object: {msg!r}"]
        if "method" in msg:
            errs = SCHEMAS.errors("notification.json", msg)
            name = schema_name(msg.get("method", "")) + ".params.json"
            if not errs and SCHEMAS.has(name):
                errs += SCHEMAS.errors(name, msg["params"])
            return errs
        if "error" in msg:
            return SCHEMAS.errors("response.error.json", msg)
        errs = SCHEMAS.errors("response.result.json", msg)
        method = self.methods.get(json.dumps(msg.get("id")))
        if method is None:
            errs.append(f"result for an id no request carried: {msg!r}")
        elif not errs and SCHEMAS.has(schema_name(method) + ".result.json"):
            errs += SCHEMAS.errors(schema_name(method) + ".result.json", msg["result"])
        return errs

    def recv(self, timeout=TIMEOUT):
        """The next message (a dict, or a list for a batch); None at EOF."""
        if self.backlog:
            return self.backlog.pop(0)
        try:
            msg = self.messages.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no message from wisp within {timeout}s; stderr:\n{self.stderr_text()}")
        if self.violations:
            raise AssertionError("protocol violations:\n" + "\n".join(self.violations))
        return msg

    def recv_all(self, timeout=TIMEOUT):
        """Every message until wisp closes stdout."""
        out = []
        while True:
            m = self.recv(timeout)
            if m is None:
                return out
            out.append(m)

    # ------------------------------------------------------------ writing
    def _remember(self, obj):
        for m in obj if isinstance(obj, list) else [obj]:
            if isinstance(m, dict) and "id" in m and isinstance(m.get("method"), str):
                self.methods[json.dumps(m["id"])] = m["method"]

    def frame(self, body):
        if self.framing == "ndjson":
            return body + b"\n"
        return b"Content-Length: %d\r\n\r\n" % len(body) + body

    def send_raw(self, data):
        self.proc.stdin.write(data)

    def send(self, obj):
        """Sends a message (dict/list, or bytes taken as a body) with framing."""
        if isinstance(obj, (bytes, bytearray)):
            try:
                self._remember(json.loads(obj))
            except ValueError:
                pass
            self.send_raw(self.frame(bytes(obj)))
        else:
            self._remember(obj)
            self.send_raw(self.frame(json.dumps(obj).encode()))

    def request(self, method, params=None, id=None):
        if id is None:
            id = self.next_id
            self.next_id += 1
        msg = {"jsonrpc": "2.0", "id": id, "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)
        return id

    def notify(self, method, params=None):
        msg = {"jsonrpc": "2.0", "method": method}
        if params is not None:
            msg["params"] = params
        self.send(msg)

    def response(self, id, timeout=TIMEOUT):
        """Waits for the response to id; other messages stay in the backlog."""
        deadline = time.monotonic() + timeout
        seen = []
        try:
            while True:
                m = self.recv(max(0.01, deadline - time.monotonic()))
                if m is None:
                    raise AssertionError(f"wisp closed stdout before answering {id!r}")
                if isinstance(m, dict) and m.get("id") == id and "method" not in m:
                    return m
                seen.append(m)
        finally:
            self.backlog = seen + self.backlog

    def call(self, method, params=None, id=None):
        return self.response(self.request(method, params, id))

    # ------------------------------------------------------------ lifecycle
    def close_stdin(self):
        if not self.proc.stdin.closed:
            self.proc.stdin.close()

    def wait(self, timeout=TIMEOUT):
        rc = self.proc.wait(timeout=timeout)
        self._reader.join(timeout)
        self._errreader.join(timeout)
        return rc

    def signal(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)

    def stderr_text(self):
        return self.stderr.decode("utf-8", "replace")

    def finish(self):
        """Teardown: closes stdin, reaps the process, fails on violations."""
        self.read_gate.set()
        try:
            self.close_stdin()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("wisp did not exit after stdin EOF; stderr:\n" + self.stderr_text())
        self._reader.join(TIMEOUT)
        self._errreader.join(TIMEOUT)
        if self.violations:
            raise AssertionError("protocol violations:\n" + "\n".join(self.violations))
        check_sanitizer_report(self.stderr_text())


@pytest.fixture
def wisp():
    """Factory: wisp(args=(), framing='ndjson') -> Client; all are reaped and checked."""
    clients = []

    def start(*args, framing="ndjson", env=None):
        c = Client(args, framing=framing, env=env)
        clients.append(c)
        return c

    yield start
    for c in clients:
        c.finish()


@pytest.fixture
def client(wisp):
    """A wisp with default options, ndjson framing."""
    return wisp()


@pytest.fixture(params=["ndjson", "lsp"])
def framed(request, wisp):
    """A wisp client in each framing."""
    return wisp(framing=request.param)


def error_of(resp, code):
    """Asserts resp is an error response with this code; returns its message."""
    assert "error" in resp, f"expected error {code}, got {resp!r}"
    assert resp["error"]["code"] == code, f"expected error {code}, got {resp!r}"
    return resp["error"]["message"]


def check_sanitizer_report(stderr):
    """Fails on an ASan/UBSan/LSan report (SANITIZE=1 builds)."""
    for mark in ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:"):
        assert mark not in stderr, "sanitizer report from wisp:\n" + stderr


def run_once(args, stdin=b"", timeout=TIMEOUT):
    """Runs wisp to completion: (returncode, stdout bytes, stderr text)."""
    p = subprocess.run([WISP_BIN, *args], input=stdin, capture_output=True, timeout=timeout)
    err = p.stderr.decode("utf-8", "replace")
    check_sanitizer_report(err)
    return p.returncode, p.stdout, err
