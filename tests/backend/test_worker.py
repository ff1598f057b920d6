"""`geoembed serve`, the warm backend: the same records, exit codes and files as one-shot runs; cancel; idle stop."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
import rasterio

from .test_cli import records
from .test_cli import run as run_once

SMALL = ["--extent", "0,40,4,44", "--crs", "EPSG:4326", "--pixel-size", "1", "--dims", "3"]
# 512 x 256 pixels embedded densely: many seconds of work, so that a cancel lands in the middle
BIG = ["similarity", "--extent", "0,0,51.2,25.6", "--crs", "EPSG:4326", "--pixel-size", "0.1", "--reference", "1,1",
       "--evaluation", "dense"]


def serve(folder: Path, idle_timeout: float = 120) -> tuple[subprocess.Popen, Path]:
    path = folder / "w.sock"
    proc = subprocess.Popen([sys.executable, "-m", "geoembed", "serve", "--socket", str(path), "--idle-timeout",
                             str(idle_timeout)], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while not path.exists():
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read() if proc.poll() else "slow"
        time.sleep(0.05)
    return proc, path


@pytest.fixture(scope="module")
def worker(store_home):
    folder = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))  # a short path: socket paths are limited
    proc, path = serve(folder)
    yield path, proc.pid
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 130
    assert not path.exists()


class Client:
    """One request: send argv, then read the worker's records."""

    def __init__(self, path: Path, argv: list[str], cwd: Path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(120)
        self.sock.connect(str(path))
        self.sock.sendall((json.dumps({"argv": argv, "cwd": str(cwd)}) + "\n").encode())
        self.lines = self.sock.makefile("r", encoding="utf-8")

    def records(self):
        for line in self.lines:
            yield json.loads(line)

    def finish(self) -> tuple[list[dict], int]:
        got = list(self.records())
        assert got[0]["type"] == "worker" and got[-1]["type"] == "exit", got
        return got[1:-1], got[-1]["code"]


def ask(path: Path, argv: list[str], cwd: Path) -> tuple[list[dict], int]:
    return Client(path, argv, cwd).finish()


def test_same_file_as_one_shot_and_the_model_stays_loaded(worker, tmp_path):
    path, _ = worker
    once = tmp_path / "once.tif"
    assert run_once("embed-raster", *SMALL, "--output", str(once)).returncode == 0
    logs = []
    for name in ("a.tif", "b.tif"):  # relative to the request's cwd
        got, code = ask(path, ["embed-raster", *SMALL, "--output", name], tmp_path)
        assert code == 0 and got[-1]["type"] == "result" and got[-1]["output"] == str(tmp_path / name)
        logs.append([r["message"] for r in got if r["type"] == "log"])
    assert any("already loaded (warm backend)" in m for m in logs[1]), logs[1]
    with rasterio.open(once) as a, rasterio.open(tmp_path / "b.tif") as b:
        assert np.array_equal(a.read(), b.read()) and a.transform == b.transform and a.crs == b.crs


@pytest.mark.parametrize("how", ["cancel line", "client closes"])
def test_cancel_leaves_no_file_and_the_worker_keeps_serving(worker, tmp_path, how):
    path, _ = worker
    client = Client(path, [*BIG, "--output", "big.tif"], tmp_path)
    deadline = time.monotonic() + 60
    while not list(tmp_path.glob(".big.*.partial.tif")):  # writing
        assert time.monotonic() < deadline
        time.sleep(0.02)
    start = time.monotonic()
    if how == "cancel line":
        client.sock.sendall(b'{"cancel": true}\n')
        rest = list(client.records())
        assert rest[-2]["type"] == "error" and "cancelled" in rest[-2]["message"] and rest[-1]["code"] == 130
    else:
        client.sock.close()
        client.lines.close()
        while list(tmp_path.iterdir()) and time.monotonic() - start < 15:
            time.sleep(0.1)
    assert time.monotonic() - start < 15
    assert list(tmp_path.iterdir()) == []
    assert ask(path, ["embed-raster", *SMALL, "--output", "after.tif"], tmp_path)[1] == 0


@pytest.mark.parametrize("argv, parameter", [
    (["embed-raster", *SMALL[:-4], "--pixel-size", "0", "--output", "x.tif"], "PIXEL_SIZE"),
    (["similarity", *SMALL, "--reference", "0,95", "--output", "x.tif"], "REFERENCE"),
    (["embed-raster", "--output", "x.tif"], None),  # argparse: missing options
])
def test_invalid_input_exits_2_and_names_the_parameter(worker, tmp_path, argv, parameter):
    got, code = ask(worker[0], argv, tmp_path)
    assert code == 2 and got[-1]["type"] == "error" and got[-1]["parameter"] == parameter
    assert (parameter or "the following arguments are required") in got[-1]["message"]
    assert list(tmp_path.iterdir()) == []


def test_a_malformed_request_is_refused(worker):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(worker[0]))
        sock.sendall(b'["embed-raster"]\n')
        got = [json.loads(line) for line in sock.makefile("r")]
    assert got[0]["type"] == "error" and "bad request" in got[0]["message"] and got[1] == {"type": "exit", "code": 2}


def test_a_second_worker_on_the_same_socket_is_refused(worker):
    done = subprocess.run([sys.executable, "-m", "geoembed", "--progress", "json", "serve", "--socket",
                           str(worker[0])], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    error = records(done.stdout)[-1]
    assert error["parameter"] == "SOCKET" and f"pid {worker[1]}" in error["message"]


def test_stops_when_idle_and_removes_its_socket(store_home):
    folder = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    proc, path = serve(folder, idle_timeout=1)
    assert proc.wait(timeout=30) == 0
    assert not path.exists()
    assert "idle for 1 s" in proc.stderr.read()
    assert os.listdir(folder) == ["w.sock.lock"]


def test_stops_when_the_process_that_started_it_exits(store_home):
    folder = Path(tempfile.mkdtemp(prefix="gw-", dir="/tmp"))
    path = folder / "w.sock"
    starter = subprocess.run(["sh", "-c", f"'{sys.executable}' -m geoembed serve --socket '{path}' 2>'{folder}/log' & "
                                          f"while [ ! -S '{path}' ]; do sleep 0.05; done"], timeout=60)
    assert starter.returncode == 0 and path.exists()
    log, deadline = folder / "log", time.monotonic() + 10
    while "the process that started it exited" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "the process that started it exited" in log.read_text()
    assert not path.exists()
