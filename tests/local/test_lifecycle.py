"""No orphans: every child of the local cloud dies with its parent, whatever kills it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from ddb_stream_patterns.local import lifecycle

REPO = Path(__file__).resolve().parents[2]

# The CLI (`python -m ddb_stream_patterns.local` is runner.main) with its run replaced by
# a quick one: a local cloud (DynamoDB Local's java, moto's server) and a function worker
# busy in its handler (so it never reads the EOF of its stdin), started from a thread
# that has ended by the time the signal comes.
PARENT = '''
import sys, threading, time
from ddb_stream_patterns.local import runner
from ddb_stream_patterns.local.cloud import LocalCloud
from ddb_stream_patterns.local.functions import LocalFunction


def run(*args, **kwargs):
    with LocalCloud() as cloud:
        fn = LocalFunction("sleeper", "index.handler", sys.argv[1], timeout_s=600)
        started = threading.Thread(target=lambda: fn.invoke({}), daemon=True)
        started.start()
        while not fn.running:
            time.sleep(0.05)
        print("ready", flush=True)
        time.sleep(600)


runner.run = run
sys.exit(runner.main([]))
'''

SLEEPER = "import time\n\ndef handler(event, context):\n    time.sleep(600)\n"

# A pytest session that uses the plugin's local_cloud fixture and then hangs in a test.
SESSION = '''
import time


def test_hangs(local_cloud):
    print("ready", flush=True)
    time.sleep(600)
'''


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = _children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            found.add(child)
            todo.append(child)
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"  # a zombie has exited; it waits only for its reaper


def command(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:300]
    except OSError:
        return "?"


def _start(args: list[str], cwd: Path) -> tuple[subprocess.Popen, set[int]]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [str(REPO / "constructs"), str(REPO / "lambda_src")])}
    parent = subprocess.Popen(args, cwd=cwd, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.DEVNULL, text=True)
    assert parent.stdout is not None
    for line in parent.stdout:
        if "ready" in line:
            break
    else:
        pytest.fail(f"the parent exited with {parent.wait()} before it was ready")
    return parent, descendants(parent.pid)


def _assert_all_die(parent: subprocess.Popen, children: set[int], signum: int) -> None:
    parent.send_signal(signum)
    parent.wait(timeout=30)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(alive(pid) for pid in children):
        time.sleep(0.1)
    survivors = {pid: command(pid) for pid in children if alive(pid)}
    for pid in survivors:  # never leave them behind, even when the test fails
        os.kill(pid, signal.SIGKILL)
    assert survivors == {}


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_every_child_dies_with_the_parent(tmp_path: Path, signum: int) -> None:
    (tmp_path / "parent.py").write_text(PARENT)
    (tmp_path / "code").mkdir()
    (tmp_path / "code" / "index.py").write_text(SLEEPER)
    parent, children = _start([sys.executable, str(tmp_path / "parent.py"),
                               str(tmp_path / "code")], tmp_path)
    commands = " | ".join(command(pid) for pid in children)
    assert "/java " in commands and "local/functions.py" in commands, commands  # both were running
    _assert_all_die(parent, children, signum)
    # Unwound through the with block (Python re-raises SIGINT after its cleanup).
    expected = {signal.SIGINT: -signal.SIGINT, signal.SIGKILL: -signal.SIGKILL}
    assert parent.returncode == expected.get(signum, 128 + signum)


def test_a_pytest_session_stops_its_children_on_sigterm(tmp_path: Path) -> None:
    signum = signal.SIGTERM
    (tmp_path / "test_session.py").write_text(textwrap.dedent(SESSION))
    parent, children = _start(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider",
         "-p", "ddb_stream_patterns.local.pytest_plugin",
         "--rootdir", str(tmp_path), str(tmp_path / "test_session.py")], tmp_path)
    assert any("java" in command(pid) for pid in children)
    _assert_all_die(parent, children, signum)
    assert parent.returncode == 2  # pytest's "interrupted": teardown ran


def test_children_started_from_an_ended_thread_survive_it() -> None:
    """PR_SET_PDEATHSIG fires when the forking *thread* ends: the spawner thread forks."""
    import threading

    box = []
    thread = threading.Thread(target=lambda: box.append(
        lifecycle.popen([sys.executable, "-c", "import time; time.sleep(30)"])))
    thread.start()
    thread.join()
    child = box[0]
    try:
        time.sleep(0.5)
        assert child.poll() is None
        assert child in lifecycle.live_children()
    finally:
        child.kill()
        child.wait()
