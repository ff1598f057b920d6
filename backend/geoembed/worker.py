"""The warm backend, ``geoembed serve``: one process that keeps models loaded and runs command lines sent to it.

A client connects to the worker's Unix socket and sends one JSON line, ``{"argv": [...], "cwd": "..."}`` (the
arguments of a one-shot ``geoembed`` run without ``--progress``). The worker answers ``{"type": "worker", "pid": N}``,
then the records the one-shot ``--progress json`` run prints (progress, log, error, result), then
``{"type": "exit", "code": N}`` with the one-shot exit code. A line ``{"cancel": true}`` from the client, or the
client closing the connection, cancels the request: it stops at its next progress check and removes its partial
output. Requests run one at a time. The worker stops taking requests after ``idle_timeout`` seconds without any,
when the process that started it exits, when its own source files change (it would serve old code) or on
SIGTERM/SIGINT; it removes its socket and exits once the requests it took have ended (their clients may cancel
them).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import socket
import threading
import time
import traceback
from pathlib import Path

from . import cli
from .errors import Cancelled, InputError
from .progress import Progress
from .runtime import release_freed_memory

TICK_S = 0.25          # how often the idle timeout, signals and a waiting request's cancel are looked at
REQUEST_WAIT_S = 10.0  # how long a client may take to send its request line
MAX_REQUEST = 1 << 20


def _listen(path: Path) -> socket.socket:
    """The transport: a Unix socket at ``path``, readable by its owner only (on Windows, a localhost TCP port
    would take its place)."""
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    os.chmod(path, 0o600)
    listener.listen(16)
    listener.settimeout(TICK_S)
    return listener


def _claim(path: Path):
    """Lock ``<path>.lock`` for this worker's lifetime and clear a socket left by a killed worker; InputError if a
    live worker holds it or the folder is not private."""
    folder = path.parent
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = folder.stat()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise InputError("SOCKET", f"the folder {folder} must belong to you and be private (chmod 700)")
    lock = open(path.with_name(path.name + ".lock"), "a+")  # noqa: SIM115 - held until the worker stops
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.seek(0)
        owner = lock.read().strip() or "?"
        lock.close()
        raise InputError("SOCKET", f"another GeoEmbed worker (pid {owner}) is serving {path}") from None
    lock.truncate(0)
    lock.write(str(os.getpid()))
    lock.flush()
    path.unlink(missing_ok=True)
    return lock


def _source_stamp() -> tuple:
    """The package's source files and their modification times: a change means this process runs old code."""
    root = Path(__file__).parent
    try:
        return tuple(sorted((str(p), p.stat().st_mtime_ns) for p in root.rglob("*.py")))
    except OSError:  # a file vanished while we looked: something is being changed
        return ()


class BadRequest(Exception):
    """A request line that is not ``{"argv": [strings], "cwd": "folder"}``, or none came."""


class Request(Progress):
    """One client connection: Progress records go to the client; the client's cancel (or its going away) cancels."""

    def __init__(self, conn: socket.socket):
        super().__init__("json", stream=conn.makefile("w", encoding="utf-8"))
        self.conn = conn
        self.incoming = conn.makefile("r", encoding="utf-8")

    def _emit(self, record: dict) -> None:
        try:
            super()._emit(record)
        except OSError:  # the client is gone
            self.cancelled = True

    def read(self) -> tuple[list[str], str]:
        """The request's argv and working folder."""
        try:
            request = json.loads(self.incoming.readline(MAX_REQUEST) or "null")
        except (OSError, ValueError) as err:
            raise BadRequest(str(err)) from None
        argv, cwd = (request.get("argv"), request.get("cwd")) if isinstance(request, dict) else (None, None)
        if not (isinstance(argv, list) and all(isinstance(a, str) for a in argv) and isinstance(cwd, str)):
            raise BadRequest('expected {"argv": [strings], "cwd": "folder"}')
        return argv, cwd

    def send(self, record: dict) -> None:
        self._emit(record)

    def watch(self) -> None:
        """Until the connection ends: a cancel line, or the client closing the connection, cancels the request."""
        try:
            for line in self.incoming:
                if json.loads(line).get("cancel"):
                    break
        except (OSError, ValueError, AttributeError):
            pass
        self.cancelled = True

    def close(self) -> None:
        """End the connection (shutdown: the makefile() files would otherwise keep it open)."""
        with contextlib.suppress(OSError):
            self.conn.shutdown(socket.SHUT_RDWR)
        for closable in (self.stream, self.incoming, self.conn):
            with contextlib.suppress(OSError, ValueError):
                closable.close()


class Worker:
    """Runs requests one at a time and knows how long it has been idle."""

    def __init__(self, progress: Progress):
        self.progress = progress
        self.turn = threading.Lock()  # the request that runs
        self.guard = threading.Lock()  # active and last_done
        self.active: dict[Request, threading.Thread] = {}
        self.last_done = time.monotonic()
        self.served = 0

    def idle_s(self) -> float:
        with self.guard:
            return 0.0 if self.active else time.monotonic() - self.last_done

    def start(self, conn: socket.socket) -> None:
        conn.settimeout(REQUEST_WAIT_S)
        request = Request(conn)
        thread = threading.Thread(target=self._serve, args=(request,), daemon=True)
        with self.guard:
            self.active[request] = thread
        thread.start()

    def finish(self) -> None:
        """Wait for the requests taken to end."""
        with self.guard:
            threads = list(self.active.values())
        for thread in threads:
            thread.join()

    def _serve(self, request: Request) -> None:
        started = time.monotonic()
        code, argv = 1, []
        try:
            argv, cwd = request.read()
            request.conn.settimeout(None)
            request.send({"type": "worker", "pid": os.getpid()})
            threading.Thread(target=request.watch, daemon=True).start()
            code = self._execute(request, argv, cwd)
        except BadRequest as err:
            request.error(f"bad request to the GeoEmbed worker: {err}")
            code = 2
        except Exception as err:  # noqa: BLE001 - a bug in a command must not stop the worker
            self.progress.log(traceback.format_exc())
            request.error(f"{type(err).__name__}: {err}")
        finally:
            request.send({"type": "exit", "code": code})
            request.close()
            release_freed_memory()  # the process kept freed memory for reuse during the request
            with self.guard:
                del self.active[request]
                self.last_done = time.monotonic()
                self.served += 1
            self.progress.log(f"exit {code} after {time.monotonic() - started:.2f} s: {' '.join(argv)}")

    def _execute(self, request: Request, argv: list[str], cwd: str) -> int:
        try:
            args = cli.parse(["--progress", "json", *argv])
        except cli.UsageError as err:
            request.error(str(err))
            return 2
        except SystemExit as stop:  # --help, --version
            return int(stop.code or 0)
        if args.func is cli.cmd_serve:
            request.error("serve: the worker cannot start another worker")
            return 2
        if not self.turn.acquire(blocking=False):
            request.log("waiting for the GeoEmbed worker to finish another request")
            while not self.turn.acquire(timeout=TICK_S):
                if request.cancelled:
                    return cli.run(args, request)  # reports the cancel, as a one-shot run would
        try:
            os.chdir(cwd)
            return cli.run(args, request)
        finally:
            self.turn.release()


def serve(path: Path, idle_timeout: float, progress: Progress) -> dict:
    """Serve requests on the socket ``path`` until idle for ``idle_timeout`` s, the source changes or a signal."""
    path = path.absolute()
    if not idle_timeout > 0:
        raise InputError("IDLE_TIMEOUT", f"the idle timeout must be a positive number of seconds, got {idle_timeout}")
    lock = _claim(path)
    try:
        listener = _listen(path)
    except OSError:
        lock.close()
        raise
    worker, source, parent, reason, refused = Worker(progress), _source_stamp(), os.getppid(), None, None
    progress.log(f"GeoEmbed worker (pid {os.getpid()}) serving {path}; stops after {idle_timeout:g} s idle")
    try:
        while reason is None:
            if progress.cancelled:
                reason = "stopped by a signal"
            elif worker.idle_s() > idle_timeout:
                reason = f"idle for {idle_timeout:g} s"
            elif os.getppid() != parent:
                reason = "the process that started it exited"
            else:
                try:
                    conn, _ = listener.accept()
                except TimeoutError:
                    continue
                if _source_stamp() == source:
                    worker.start(conn)
                else:
                    reason, refused = "its source files changed", conn
    finally:
        path.unlink(missing_ok=True)  # before the lock goes: a new worker may bind the path after that
        lock.close()
        listener.close()
    if refused:  # closed without a reply once the socket is free: its client starts a new worker
        refused.close()
    worker.finish()
    progress.log(f"GeoEmbed worker stopping: {reason}; served {worker.served} requests")
    if progress.cancelled:
        raise Cancelled(f"the worker was stopped after {worker.served} requests")
    return {"served": worker.served, "reason": reason}
