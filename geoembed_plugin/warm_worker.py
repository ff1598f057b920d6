"""The warm backend as the plugin sees it: a long-lived ``python -m geoembed serve`` that keeps models loaded.

There is one worker per backend interpreter and environment, reached over a Unix socket in a private folder
($XDG_RUNTIME_DIR/geoembed, else <temp>/geoembed-<uid>). The first run starts it; it stops after IDLE_TIMEOUT_S
without requests, when the backend's code changes, or when the process that started it (QGIS, qgis_process)
exits. The protocol is described in the backend's geoembed/worker.py. Anything that keeps a worker from taking up
a request raises WorkerUnavailable, and the caller runs the backend as a one-shot child process instead.
"""

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess  # nosec B404  # the warm backend is a separate Python process
import tempfile
import time

from .settings import Settings

ENV_WARM = "GEOEMBED_WARM"
IDLE_TIMEOUT_S = 600  # a worker stops after this long without requests
START_WAIT_S = 30     # how long a new worker may take to listen
ANSWER_WAIT_S = 10    # how long a worker may take to take up a request
# Besides GEOEMBED_* (but those only the plugin reads), the variables that change what a worker computes: clients
# that differ in them get a worker of their own.
ENV_KEYS = ("HOME", "XDG_DATA_HOME", "CUDA_VISIBLE_DEVICES", "OMP_NUM_THREADS", "GDAL_CACHEMAX", "GDAL_DATA",
            "PROJ_DATA", "PROJ_LIB")
PLUGIN_ONLY = ("GEOEMBED_PYTHON", ENV_WARM)

_started = []  # workers this process started, polled so that those which stopped are reaped


class WorkerUnavailable(Exception):
    """No warm worker could take up the request."""


def enabled():
    """Whether to use the warm backend: $GEOEMBED_WARM (0 or 1), else the setting (default on). Unix only."""
    if not hasattr(socket, "AF_UNIX") or not hasattr(os, "getuid"):
        return False
    value = os.environ.get(ENV_WARM, "").strip().lower()
    if value:
        return value not in ("0", "false", "no", "off")
    return Settings.load().warm_backend


def socket_path(python, env):
    """The socket of the worker for ``python`` started with ``env``, in a folder private to this user."""
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    base = runtime if runtime and os.path.isdir(runtime) else tempfile.gettempdir()
    folder = os.path.join(base, "geoembed" if base == runtime else f"geoembed-{os.getuid()}")
    os.makedirs(folder, mode=0o700, exist_ok=True)
    st = os.stat(folder)
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise WorkerUnavailable(f"the folder {folder} is not private to this user")
    relevant = sorted((k, v) for k, v in env.items()
                      if (k.startswith("GEOEMBED_") and k not in PLUGIN_ONLY) or k in ENV_KEYS)
    key = hashlib.sha256(json.dumps([python, relevant]).encode("utf-8")).hexdigest()[:16]
    return os.path.join(folder, f"worker-{key}.sock")


class Connection:
    """A request a worker has taken up: read its records from ``lines``; ``cancel()`` asks it to stop."""

    def __init__(self, sock, lines, pid, log):
        self.sock = sock
        self.lines = lines
        self.pid = pid
        self.log = log
        self.killed = False

    def cancel(self):
        with contextlib.suppress(OSError):
            self.sock.sendall(b'{"cancel": true}\n')

    def kill(self):
        """Give up on the request: close the connection and kill the worker, which did not answer a cancel."""
        self.close()
        if not self.killed:
            self.killed = True
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self):
        with contextlib.suppress(OSError):
            self.sock.shutdown(socket.SHUT_RDWR)
        for closable in (self.lines, self.sock):
            with contextlib.suppress(OSError, ValueError):
                closable.close()

    def log_tail(self, count=20):
        return _tail(self.log, count)


def open_request(python, env, argv):
    """Send the command line ``argv`` (without --progress) to the worker for (python, env), starting one if none
    listens; the Connection once it has taken up the request."""
    path = socket_path(python, env)
    for _ in range(2):  # a worker that was stopping closes without taking up the request: start another
        sock = _connect(path) or _start(python, env, path)
        lines = _send(sock, argv)
        if lines is not None:
            try:
                hello = json.loads(lines.readline() or "null")
                if isinstance(hello, dict) and hello.get("type") == "worker":
                    sock.settimeout(None)
                    return Connection(sock, lines, int(hello["pid"]), path + ".log")
            except (OSError, ValueError, KeyError, TypeError):
                pass
        with contextlib.suppress(OSError):
            sock.close()
    raise WorkerUnavailable(f"the worker at {path} did not take up the request")


def _connect(path):
    """The transport: a socket connected to the worker at ``path``, or None where none listens."""
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(ANSWER_WAIT_S)
    try:
        sock.connect(path)
        return sock
    except (FileNotFoundError, ConnectionRefusedError):
        sock.close()
        return None
    except OSError as err:
        sock.close()
        raise WorkerUnavailable(f"cannot connect to {path}: {err}") from err


def _send(sock, argv):
    """Send the request; the connection's incoming lines, or None if the worker closed it."""
    request = json.dumps({"argv": [str(a) for a in argv], "cwd": os.getcwd()}) + "\n"
    try:
        sock.sendall(request.encode("utf-8"))
        return sock.makefile("r", encoding="utf-8", errors="replace")
    except OSError:
        return None


def _start(python, env, path):
    """Start a worker in a session of its own (a Ctrl-C meant for QGIS does not reach it) and wait until it
    listens; a socket connected to it."""
    _started[:] = [proc for proc in _started if proc.poll() is None]
    log = path + ".log"
    argv = [python, "-m", "geoembed", "serve", "--socket", path, "--idle-timeout", str(IDLE_TIMEOUT_S)]
    try:
        with open(log, "w", encoding="utf-8") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,  # nosec B603  # a list, no shell
                                    stderr=out, env=env, cwd=os.path.dirname(path), start_new_session=True)
    except OSError as err:
        raise WorkerUnavailable(f"cannot start {python}: {err}") from err
    _started.append(proc)
    deadline = time.monotonic() + START_WAIT_S
    while time.monotonic() < deadline:
        sock = _connect(path)
        if sock:
            return sock
        if proc.poll() is not None:  # it failed, or another new worker won the socket (then connect again)
            sock = _connect(path)
            if sock:
                return sock
            raise WorkerUnavailable(f"the worker exited with code {proc.returncode}: {' '.join(_tail(log, 3))}")
        time.sleep(0.05)
    raise WorkerUnavailable(f"the worker did not listen within {START_WAIT_S} s (log: {log})")


def _tail(path, count):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return [line.rstrip("\n") for line in f if line.strip()][-count:]
    except OSError:
        return []
