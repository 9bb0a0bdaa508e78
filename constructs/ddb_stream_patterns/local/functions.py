"""Lambda functions run locally: one long-lived worker process per function.

Each :class:`LocalFunction` starts its own Python process (``python -I -S -B``), so
module caches and ``os.environ`` stay per function, as in Lambda: several functions
import ``index`` or ``ddb_stream_runtime.router`` with different environments. The
worker's ``sys.path`` is the function's code directory, then its layers'
``python/lib/pythonX.Y/site-packages`` and ``python/`` directories (Lambda's ``/opt``
layout), the standard library, and last this interpreter's ``site-packages`` (for
boto3, as Lambda's runtime provides it); ``.pth`` files are not run, so an editable
install of this project cannot put ``lambda_src`` on the path, and the packages in
``hidden_modules`` are only importable from the function's own code or layers.

The parent talks to the worker with JSON lines over private pipes; whatever the
handler prints (stdout and stderr) is the function's log stream, kept in ``.logs``
with Lambda's ``START`` / ``END`` / ``REPORT`` lines.

Crashes fail the invocation with the error types Lambda reports, and the worker is
replaced (Lambda resets the execution environment), so the next invoke starts cold:

==========================================  ===========================================
the handler ...                             ``FunctionError.error_type`` (message)
==========================================  ===========================================
runs past ``timeout_s`` (killed)            ``Sandbox.Timedout`` (``RequestId: ... Error:
                                            Task timed out after 3.00 seconds``), also a
                                            ``TimeoutError``
calls ``sys.exit(n)`` / ``os._exit(n)``     ``Runtime.ExitError`` (``RequestId: ... Error:
                                            Runtime exited with error: exit status n``)
is killed by a signal                       ``Runtime.ExitError`` (``... signal: killed``)
uses more memory than ``memory_mb``         ``Runtime.OutOfMemory`` (``... Runtime exited
                                            with error: signal: killed``)
==========================================  ===========================================

Memory is enforced as Lambda does, on resident memory: the parent reads the worker's
peak resident set (``VmHWM`` in ``/proc/<pid>/status``) every
``MEMORY_POLL_INTERVAL_S`` while an invocation runs and once after it; past
``memory_mb`` the worker is killed and the invocation fails with
``Runtime.OutOfMemory``, even if the handler had already returned. Like Lambda's
limit, it counts the interpreter itself (measured here: a bare worker 9 MB, with
``json``/``logging`` 11 MB, with boto3 and one client 48 MB resident). As a backstop
against a runaway allocation outgrowing the machine between two reads, the worker's
address space is capped (``RLIMIT_AS``) at ``memory_mb + ADDRESS_SPACE_HEADROOM_MB``:
address space is not memory (each thread reserves an 8 MB stack and a 64 MB malloc
arena, measured: 48 MB resident is 128 MB of address space after one thread), so
the cap sits well above ``memory_mb``; an allocation past it raises ``MemoryError``,
which fails the invocation with ``Runtime.OutOfMemory`` when it escapes the handler.
Not emulated: a ``MemoryError`` the handler catches itself (in Lambda the process
would have been killed, locally the handler goes on), and memory of processes the
handler starts.

>>> fn = LocalFunction("hello", "index.handler", "path/to/code")   # doctest: +SKIP
>>> fn.invoke({"Records": []})                                       # doctest: +SKIP
{'batchItemFailures': []}
>>> fn.close()                                                       # doctest: +SKIP

This module imports only the standard library: it is also the worker's script.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time
import uuid
import weakref
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "EXIT_ERROR",
    "OUT_OF_MEMORY",
    "TIMED_OUT",
    "FunctionError",
    "FunctionTimeout",
    "Invocation",
    "LocalFunction",
    "layer_python_paths",
]

#: Packages a function may only import from its own code or layers (never from the
#: interpreter's site-packages, where a wheel install of this project would put them).
HIDDEN_MODULES = ("ddb_stream_runtime", "ddb_stream_patterns")

_REPORT_WAIT_S = 2.0  # how long invoke waits for the REPORT line after the response
#: How often the peak resident memory of a busy worker is read (seconds).
MEMORY_POLL_INTERVAL_S = 0.05
#: The worker's address-space cap is ``memory_mb`` plus this (a backstop, see above).
ADDRESS_SPACE_HEADROOM_MB = 1024

TIMED_OUT = "Sandbox.Timedout"
EXIT_ERROR = "Runtime.ExitError"
OUT_OF_MEMORY = "Runtime.OutOfMemory"


class FunctionError(Exception):
    """The handler raised (or the runtime failed): Lambda's ``FunctionError`` response.

    Attributes
    ----------
    error_type : str
        The exception class name, or Lambda's own: ``Runtime.*`` (``ImportModuleError``,
        ``HandlerNotFound``, ``MarshalError``, ``ExitError``, ``OutOfMemory``) or
        ``Sandbox.Timedout``.
    message : str
        The error message.
    stack_trace : list[str]
        The handler's traceback lines, when there is one.
    """

    def __init__(self, error_type: str, message: str, stack_trace: Sequence[str] = ()) -> None:
        super().__init__(f"{error_type}: {message}")
        self.error_type = error_type
        self.message = message
        self.stack_trace = list(stack_trace)


class FunctionTimeout(FunctionError, TimeoutError):
    """The handler (or its init) ran past its time: Lambda's ``Sandbox.Timedout``."""


@dataclass
class Invocation:
    """One invocation, as its log stream and outcome tell it."""

    request_id: str
    duration_ms: float = 0.0
    error_type: str | None = None  # None: it succeeded; else FunctionError.error_type
    logs: list[str] = field(default_factory=list)  # START .. REPORT, handler output between


def layer_python_paths(layer_dirs: Iterable[str | Path], version: str | None = None) -> list[str]:
    """Import paths Lambda derives from layers unpacked as ``/opt``: site-packages, then python/.

    A layer without a ``python/`` directory contributes nothing (as in Lambda).
    """
    version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
    paths: list[str] = []
    for layer in layer_dirs:
        root = Path(layer) / "python"
        site = root / "lib" / f"python{version}" / "site-packages"
        paths += [str(p) for p in (site, root) if p.is_dir()]
    return paths


def _default_site_packages() -> list[str]:
    import site

    return [p for p in site.getsitepackages() if os.path.isdir(p)]


class LocalFunction:
    """A Lambda function backed by a worker process (implements ``model.Invocable``).

    Parameters
    ----------
    name
        The function name (``AWS_LAMBDA_FUNCTION_NAME``).
    handler
        ``module.function`` (``pkg.module.function`` and ``dir/module.function`` work).
    code_dir
        The unpacked code asset (Lambda's ``/var/task``); also the worker's cwd.
    layer_dirs
        Unpacked layers (each as Lambda's ``/opt``: modules under ``python/``).
    environment
        The function's variables, local endpoints and credentials included (see
        ``LocalCloud.function_environment``); Lambda's reserved ``AWS_LAMBDA_*``,
        ``_HANDLER`` and ``LAMBDA_TASK_ROOT`` are set here and override them.
    timeout_s
        The function timeout; past it the worker is killed (restarted on the next
        invoke) and ``invoke`` raises :class:`FunctionTimeout` (``Sandbox.Timedout``,
        also a ``TimeoutError``).
    memory_mb
        The function's ``MemorySize``: reported to the handler and enforced on the
        worker's resident memory (``Runtime.OutOfMemory``, see the module notes).
    runtime, function_arn
        Reported to the handler (context, ``AWS_EXECUTION_ENV``).
    init_timeout_s
        Budget for importing the handler (Lambda's 10 s init phase).
    log_limit
        How many log lines ``.logs`` keeps (the most recent).
    python, site_packages
        The interpreter and the site-packages directories the worker uses (default:
        this interpreter's).
    hidden_modules
        Top-level packages importable only from ``code_dir`` and the layers.
    authorizer
        Decides each AWS call the handler makes through botocore, before it is sent:
        called with ``{"prefix", "operation", "params"}`` (the IAM service prefix, the
        operation name, the parameters that name resources), it returns ``None`` to
        let the call through or ``{"code", "message", "status"}``, which the handler
        sees raised as the service's ``ClientError`` (see ``iam.RoleAuthorizer``).
        Default: ``None`` (calls are not checked).

    ``invoke`` is thread-safe; one worker runs one invocation at a time (invocations
    of the same function from several threads queue up).
    """

    def __init__(
        self,
        name: str,
        handler: str,
        code_dir: str | Path,
        layer_dirs: Sequence[str | Path] = (),
        environment: Mapping[str, str] | None = None,
        timeout_s: float = 3.0,
        *,
        memory_mb: int = 128,
        runtime: str | None = None,
        function_arn: str | None = None,
        init_timeout_s: float = 10.0,
        log_limit: int = 500,
        python: str | None = None,
        site_packages: Sequence[str] | None = None,
        hidden_modules: Sequence[str] = HIDDEN_MODULES,
        authorizer: Callable[[dict], dict | None] | None = None,
    ) -> None:
        self.name = name
        self.handler = handler
        self.code_dir = Path(code_dir).resolve()
        self.layer_dirs = [Path(p).resolve() for p in layer_dirs]
        self.environment = {str(k): str(v) for k, v in (environment or {}).items()}
        self.timeout_s = float(timeout_s)
        self.memory_mb = int(memory_mb)
        self.runtime = runtime or f"python{sys.version_info.major}.{sys.version_info.minor}"
        self.function_arn = function_arn or f"arn:aws:lambda:us-east-1:123456789012:function:{name}"
        self.init_timeout_s = float(init_timeout_s)
        self.python = python or sys.executable
        self.site_packages = list(
            _default_site_packages() if site_packages is None else site_packages
        )
        self.hidden_modules = list(hidden_modules)
        self.authorizer = authorizer
        self.denied = 0  # AWS calls the authorizer refused
        self.last_denied: str | None = None  # "Code: message" of the latest refusal
        if not self.code_dir.is_dir():
            raise FileNotFoundError(f"{name}: code directory {self.code_dir} does not exist")

        self.invocations = 0  # invoke calls
        self.errors = 0  # of which failed (handler error, runtime error or timeout)
        self.timeouts = 0  # of which timed out
        self.out_of_memory = 0  # of which used more than memory_mb
        self.cold_starts = 0  # worker processes started
        self.last_invocation: Invocation | None = None

        self._logs: deque[str] = deque(maxlen=log_limit)
        self._lock = threading.Lock()  # one invocation at a time
        self._log_cond = threading.Condition()
        self._current: Invocation | None = None
        self._reported: set[str] = set()
        self._proc: subprocess.Popen | None = None
        self._responses: queue.Queue | None = None
        self._initialized = False
        self._threads: list[threading.Thread] = []
        self._finalizer: weakref.finalize | None = None

    # -------------------------------------------------------------------- public

    @property
    def logs(self) -> list[str]:
        """The most recent log lines (handler output and START/END/REPORT), oldest first."""
        with self._log_cond:
            return list(self._logs)

    def clear_logs(self) -> None:
        with self._log_cond:
            self._logs.clear()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> LocalFunction:
        """Start the worker now (it imports the handler in the background): a warm-up."""
        with self._lock:
            if not self.running:
                self._spawn()
        return self

    def invoke(self, event: Mapping[str, Any]) -> Any:
        """Run the handler on ``event``; return its response.

        Raises
        ------
        FunctionError
            The handler raised, or the runtime failed (import error, exit, out of
            memory, bad response); after a crash the worker is replaced.
        FunctionTimeout
            The handler ran past ``timeout_s`` (the worker is killed and replaced);
            a ``FunctionError`` and a ``TimeoutError``.
        """
        payload = json.dumps(event)  # a TypeError here is the caller's bug, not an error
        with self._lock:
            self.invocations += 1
            try:
                return self._invoke(payload)
            except FunctionError:
                self.errors += 1
                raise

    def close(self) -> None:
        """Stop the worker (idempotent); the next ``invoke`` would start a new one."""
        with self._lock:
            self._stop(graceful=True)

    def __enter__(self) -> LocalFunction:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"LocalFunction({self.name!r}, {self.handler!r}, {state})"

    # -------------------------------------------------------------------- worker

    def _worker_environment(self) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "LANG": "C.UTF-8",
            "TZ": ":UTC",
        }
        env.update(self.environment)
        env.update(
            {
                "AWS_LAMBDA_FUNCTION_NAME": self.name,
                "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(self.memory_mb),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{self.name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"local/[$LATEST]{uuid.uuid4().hex}",
                "AWS_LAMBDA_INITIALIZATION_TYPE": "on-demand",
                "AWS_EXECUTION_ENV": f"AWS_Lambda_{self.runtime}",
                "LAMBDA_TASK_ROOT": str(self.code_dir),
                "_HANDLER": self.handler,
            }
        )
        return env

    def _spawn(self) -> None:
        function_paths = [str(self.code_dir), *layer_python_paths(self.layer_dirs)]
        config = {
            "handler": self.handler,
            "function_paths": function_paths,
            "site_packages": self.site_packages,
            "hidden_modules": self.hidden_modules,
            "function_name": self.name,
            "function_arn": self.function_arn,
            "memory_mb": self.memory_mb,
            "address_space_mb": self.memory_mb + ADDRESS_SPACE_HEADROOM_MB,
            "authorize": self.authorizer is not None,
        }
        from .lifecycle import popen  # dies with us (this file is also the worker's script)

        proc = popen(
            [self.python, "-I", "-S", "-B", "-u", __file__, json.dumps(config)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=self.code_dir,
            env=self._worker_environment(),
        )
        responses: queue.Queue = queue.Queue()
        threads = [
            threading.Thread(
                target=self._read_responses,
                args=(proc, responses),
                name=f"{self.name}-responses",
                daemon=True,
            ),
            threading.Thread(
                target=self._read_logs,
                args=(proc.stderr,),
                name=f"{self.name}-logs",
                daemon=True,
            ),
        ]
        for t in threads:
            t.start()
        self._proc, self._responses, self._threads = proc, responses, threads
        self._initialized = False
        self.cold_starts += 1
        self._finalizer = weakref.finalize(self, _kill, proc)

    def _stop(self, graceful: bool) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if graceful and proc.poll() is None:
            try:
                proc.stdin.close()  # EOF: the worker leaves its loop
                proc.wait(timeout=2)
            except (OSError, subprocess.TimeoutExpired):
                pass
        _kill(proc)
        for t in self._threads:
            t.join(timeout=2)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            try:
                stream.close()
            except OSError:
                pass
        if self._finalizer is not None:
            self._finalizer.detach()
        self._threads, self._responses, self._initialized = [], None, False

    def _read_responses(self, proc: subprocess.Popen, responses: queue.Queue) -> None:
        for line in proc.stdout:
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if isinstance(message, dict) and "authorize" in message:
                self._answer_authorize(proc, message["authorize"])
                continue
            responses.put(message)
        responses.put(None)  # EOF: the worker is gone

    def _answer_authorize(self, proc: subprocess.Popen, request: dict) -> None:
        """Decide one AWS call of the handler (the worker waits for this line)."""
        try:
            denied = self.authorizer(request) if self.authorizer is not None else None
        except Exception as exc:  # never leave the worker waiting
            denied = {"code": "InternalFailure", "status": 500,
                      "message": f"the local authorizer failed: {exc!r}"}
        if denied is not None:
            self.denied += 1
            self.last_denied = f"{denied.get('code')}: {denied.get('message')}"
            import logging

            logging.getLogger(__name__).warning("%s: %s: %s", self.name, denied.get("code"),
                                                denied.get("message"))
        try:
            proc.stdin.write(json.dumps({"denied": denied}).encode() + b"\n")
            proc.stdin.flush()
        except (OSError, ValueError):
            pass  # the worker is gone

    def _read_logs(self, stream: Any) -> None:
        for raw in stream:
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            with self._log_cond:
                self._logs.append(line)
                current = self._current
                if current is not None:
                    current.logs.append(line)
                    if line.startswith(f"REPORT RequestId: {current.request_id}"):
                        self._reported.add(current.request_id)
                        self._log_cond.notify_all()

    def _next_message(self, timeout: float) -> dict | None:
        assert self._responses is not None
        return self._responses.get(timeout=timeout)  # raises queue.Empty

    def _peak_memory_mb(self) -> float | None:
        """The worker's peak resident memory (``VmHWM``), or None where /proc cannot tell."""
        proc = self._proc
        if proc is None:
            return None
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                for line in status:
                    if line.startswith("VmHWM:"):
                        return int(line.split()[1]) / 1024
        except (OSError, ValueError, IndexError):
            return None
        return None

    def _over_memory(self) -> bool:
        peak = self._peak_memory_mb()
        return peak is not None and peak > self.memory_mb

    def _await_response(self, timeout: float) -> dict | None | _OverMemory:
        """The worker's next message, reading its memory while it works.

        Raises ``queue.Empty`` after ``timeout``; returns ``_OVER_MEMORY`` as soon as
        the worker's peak resident memory passes ``memory_mb``.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise queue.Empty
            try:
                message = self._next_message(min(MEMORY_POLL_INTERVAL_S, remaining))
            except queue.Empty:
                if self._over_memory():
                    return _OVER_MEMORY
                continue
            if message is not None and self._over_memory():
                return _OVER_MEMORY  # it finished, but Lambda would have killed it first
            return message

    def _crash_report(self, invocation: Invocation, error_type: str, message: str,
                      status: str = "error") -> None:
        """Lambda's log lines for an invocation that ended the runtime."""
        request_id = invocation.request_id
        self._log(f"{_utc_now()} {message}")
        self._log(error_type)
        self._log(f"END RequestId: {request_id}")
        self._log(
            f"REPORT RequestId: {request_id}\tDuration: {invocation.duration_ms:.2f} ms\t"
            f"Memory Size: {self.memory_mb} MB\tStatus: {status}\tError Type: {error_type}"
        )

    def _died(self, invocation: Invocation) -> FunctionError:
        """The worker exited mid-invocation (sys.exit, os._exit, a signal): ExitError."""
        proc = self._proc
        code = proc.wait(timeout=5) if proc is not None else None
        self._stop(graceful=False)
        message = (
            f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
            f"{_exit_reason(code)}"
        )
        invocation.error_type = EXIT_ERROR
        self._crash_report(invocation, EXIT_ERROR, message)
        return FunctionError(EXIT_ERROR, message)

    def _killed_for_memory(self, invocation: Invocation) -> FunctionError:
        """The worker used more than memory_mb: killed, as Lambda does (OutOfMemory)."""
        self.out_of_memory += 1
        self._stop(graceful=False)
        message = (
            f"RequestId: {invocation.request_id} Error: Runtime exited with error: "
            "signal: killed"
        )
        invocation.error_type = OUT_OF_MEMORY
        self._crash_report(invocation, OUT_OF_MEMORY, message)
        return FunctionError(OUT_OF_MEMORY, message)

    def _invoke(self, payload: str) -> Any:
        request_id = str(uuid.uuid4())
        invocation = Invocation(request_id)
        self.last_invocation = invocation
        if not self.running:
            self._stop(graceful=False)
            self._spawn()
        with self._log_cond:
            self._current = invocation
        if not self._initialized:
            try:
                message = self._next_message(self.init_timeout_s)
            except queue.Empty:
                self._stop(graceful=False)
                invocation.error_type = TIMED_OUT
                self._log(
                    f"INIT_REPORT Init Duration: {self.init_timeout_s * 1000:.0f} ms "
                    "Phase: init Status: timeout"
                )
                raise FunctionTimeout(
                    TIMED_OUT,
                    f"{self.name}: init (importing {self.handler}) took longer than "
                    f"{self.init_timeout_s:g} s",
                ) from None
            if message is None:
                raise self._died(invocation)
            if not message.get("ok"):
                # Lambda resets the sandbox after a failed init and retries on next invoke.
                self._stop(graceful=False)
                invocation.error_type = message["errorType"]
                raise FunctionError(
                    message["errorType"], message["errorMessage"], message.get("stackTrace", ())
                )
            self._initialized = True

        started = time.monotonic()
        try:
            assert self._proc is not None and self._proc.stdin is not None
            request = json.dumps({"id": request_id, "timeout_ms": int(self.timeout_s * 1000)})
            self._proc.stdin.write(request.encode() + b"\n" + payload.encode() + b"\n")
            self._proc.stdin.flush()
        except OSError:
            raise self._died(invocation) from None
        try:
            message = self._await_response(self.timeout_s)
        except queue.Empty:
            self.timeouts += 1
            self._stop(graceful=False)
            invocation.duration_ms = (time.monotonic() - started) * 1000
            invocation.error_type = TIMED_OUT
            self._log(
                f"{_utc_now()} {request_id} Task timed out after {self.timeout_s:.2f} seconds"
            )
            self._log(f"END RequestId: {request_id}")
            self._log(
                f"REPORT RequestId: {request_id}\tDuration: "
                f"{invocation.duration_ms:.2f} ms\tStatus: timeout"
            )
            raise FunctionTimeout(
                TIMED_OUT,
                f"RequestId: {request_id} Error: Task timed out after "
                f"{self.timeout_s:.2f} seconds",
            ) from None
        invocation.duration_ms = (time.monotonic() - started) * 1000
        if message is _OVER_MEMORY:
            raise self._killed_for_memory(invocation)
        if message is None:
            raise self._died(invocation)
        with self._log_cond:  # let the REPORT line reach .logs before returning
            self._log_cond.wait_for(
                lambda: request_id in self._reported or not self.running, _REPORT_WAIT_S
            )
            self._reported.discard(request_id)
            self._current = None
        if message.get("ok"):
            return message.get("result")
        invocation.error_type = message["errorType"]
        if invocation.error_type == OUT_OF_MEMORY:  # a MemoryError escaped the handler
            self.out_of_memory += 1
            self._stop(graceful=False)
        raise FunctionError(
            message["errorType"], message["errorMessage"], message.get("stackTrace", ())
        )

    def _log(self, line: str) -> None:
        with self._log_cond:
            self._logs.append(line)
            if self.last_invocation is not None:
                self.last_invocation.logs.append(line)
            self._current = None


class _OverMemory:
    """The marker :meth:`LocalFunction._await_response` returns for a worker over its memory."""


_OVER_MEMORY = _OverMemory()


def _exit_reason(code: int | None) -> str:
    """How Lambda words a runtime's exit: ``exit status 3``, ``signal: killed``."""
    if code is None:
        return "exit status unknown"
    if code >= 0:
        return f"exit status {code}"
    import signal

    try:
        name = signal.strsignal(-code) or f"signal {-code}"
    except ValueError:
        name = f"signal {-code}"
    return f"signal: {name.lower()}"


def _kill(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass


def _utc_now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z"


# ============================================================================ worker
# Runs as `python -I -S -B -u functions.py CONFIG`: standard library only up to the
# point where the handler's module is imported.


class _Context:
    """Lambda's context object."""

    def __init__(self, config: dict, request_id: str, timeout_ms: int) -> None:
        self.function_name = config["function_name"]
        self.function_version = "$LATEST"
        self.invoked_function_arn = config["function_arn"]
        self.memory_limit_in_mb = config["memory_mb"]
        self.aws_request_id = request_id
        self.log_group_name = os.environ.get("AWS_LAMBDA_LOG_GROUP_NAME")
        self.log_stream_name = os.environ.get("AWS_LAMBDA_LOG_STREAM_NAME")
        self.identity = None
        self.client_context = None
        self._deadline = time.monotonic() + timeout_ms / 1000

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


def _install_module_guard(hidden: Sequence[str], function_paths: list[str]) -> None:
    """Top-level ``hidden`` packages resolve only from the function's code and layers."""
    import importlib.machinery

    class _FunctionOnly:
        @staticmethod
        def find_spec(fullname, path=None, target=None):  # noqa: ANN001
            if path is not None or fullname not in hidden:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, function_paths)
            if spec is None:
                raise ModuleNotFoundError(f"No module named '{fullname}'", name=fullname)
            return spec

    sys.meta_path.insert(0, _FunctionOnly())


#: Parameters that name the resources a call is authorized on (sent to the authorizer).
_IAM_PARAMS = ("TableName", "IndexName", "StreamArn", "TopicArn", "TargetArn", "QueueUrl",
               "Bucket", "Key")


def _iam_params(params: Mapping[str, Any]) -> dict:
    """The resource-naming subset of a call's parameters (tables of batches included)."""
    found = {k: params[k] for k in _IAM_PARAMS if isinstance(params.get(k), str)}
    tables = [found.pop("TableName")] if "TableName" in found else []
    if isinstance(params.get("RequestItems"), Mapping):  # BatchGetItem / BatchWriteItem
        tables += list(params["RequestItems"])
    transact = []  # TransactWriteItems / TransactGetItems: [kind, table] per item
    for item in params.get("TransactItems") or ():
        for kind, op in (item.items() if isinstance(item, Mapping) else ()):
            if isinstance(op, Mapping) and isinstance(op.get("TableName"), str):
                transact.append([kind, op["TableName"]])
    if transact:
        found["TransactItems"] = transact
    if tables:
        found["TableNames"] = list(dict.fromkeys(tables))
    return found


#: Header carrying the IAM denial of a SigV4-signed OpenSearch request to the stand-in,
#: which answers it with OpenSearch Service's 403 (see ``opensearch.py``).
IAM_DENIED_HEADER = "X-Ddb-Local-Iam-Denied"
#: Signing names whose SigV4-signed HTTP requests are authorized (``es``: OpenSearch
#: Service's ``es:ESHttp*`` actions, one per HTTP method).
_SIGNED_HTTP_SERVICES = ("es",)


def _patch_sigv4(auth_module: Any, ask: Callable[[dict], dict | None]) -> None:
    """Authorize requests signed for OpenSearch Service (``es:ESHttp<Method>``).

    Handlers that call OpenSearch sign HTTP requests with botocore's ``SigV4Auth`` and
    send them themselves: the domain, not botocore, decides. The request is asked about
    as ``{"prefix": "es", "operation": "ESHttpPost", "params": {"Host", "Path"}}``; a
    denial travels with the request in :data:`IAM_DENIED_HEADER` (JSON), so the stand-in
    answers it as the domain would, with 403.
    """
    from urllib.parse import urlsplit

    signer = auth_module.SigV4Auth
    original = signer.add_auth

    def add_auth(self: Any, request: Any) -> Any:
        result = original(self, request)
        if getattr(self, "_service_name", None) in _SIGNED_HTTP_SERVICES:
            url = urlsplit(request.url)
            denied = ask({"prefix": self._service_name,
                          "operation": f"ESHttp{str(request.method).capitalize()}",
                          "params": {"Host": url.netloc, "Path": url.path or "/"}})
            if denied:
                request.headers[IAM_DENIED_HEADER] = json.dumps(
                    {"code": denied.get("code"), "message": denied.get("message")})
        return result

    signer.add_auth = add_auth


def _install_iam_guard(ask: Callable[[dict], dict | None]) -> None:
    """Check every botocore call with ``ask`` before it is sent (patched on import), and
    every request signed for OpenSearch (:func:`_patch_sigv4`)."""
    import importlib.machinery

    def patch(client_module: Any) -> None:
        base = client_module.BaseClient
        original = base._make_api_call

        def _make_api_call(self: Any, operation_name: str, api_params: Any) -> Any:
            model = self.meta.service_model
            prefix = model.signing_name or model.endpoint_prefix
            denied = ask({"prefix": prefix, "operation": operation_name,
                          "params": _iam_params(api_params or {})})
            if denied:
                response = {
                    "Error": {"Code": denied["code"], "Message": denied["message"]},
                    "ResponseMetadata": {"HTTPStatusCode": denied.get("status", 400)},
                }
                raise self.exceptions.from_code(denied["code"])(response, operation_name)
            return original(self, operation_name, api_params)

        base._make_api_call = _make_api_call

    patches = {"botocore.client": patch,
               "botocore.auth": lambda module: _patch_sigv4(module, ask)}

    class _PatchBotocore:
        @staticmethod
        def find_spec(fullname, path=None, target=None):  # noqa: ANN001
            if fullname not in patches:
                return None
            spec = importlib.machinery.PathFinder.find_spec(fullname, path)
            if spec is None or spec.loader is None:
                return spec
            exec_module = spec.loader.exec_module

            def exec_and_patch(module: Any) -> None:
                exec_module(module)
                patches[fullname](module)

            spec.loader.exec_module = exec_and_patch
            return spec

    sys.meta_path.insert(0, _PatchBotocore())


def _load_handler(handler: str) -> Any:
    import importlib

    module_name, _, function_name = handler.replace("/", ".").rpartition(".")
    if not module_name or not function_name:
        raise _InitError("Runtime.MalformedHandlerName", f"Bad handler '{handler}'")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise _InitError(
            "Runtime.ImportModuleError", f"Unable to import module '{module_name}': {exc}"
        ) from exc
    except SyntaxError as exc:
        raise _InitError("Runtime.UserCodeSyntaxError", f"Syntax error in module: {exc}") from exc
    func = getattr(module, function_name, None)
    if func is None:
        raise _InitError(
            "Runtime.HandlerNotFound",
            f"Handler '{function_name}' missing on module '{module_name}'",
        )
    return func


class _InitError(Exception):
    def __init__(self, error_type: str, message: str) -> None:
        super().__init__(message)
        self.error_type = error_type


def _error_message(exc: BaseException, error_type: str | None = None) -> dict:
    import traceback

    return {
        "ok": False,
        "errorType": error_type or type(exc).__name__,
        "errorMessage": str(exc),
        "stackTrace": traceback.format_tb(_user_frames(exc)),
    }


def _user_frames(exc: BaseException) -> Any:
    """The traceback without the worker's own frame (Lambda shows the handler's only)."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame.f_code.co_filename == __file__ and tb.tb_next:
        return tb.tb_next
    return tb


def _cap_address_space(limit_mb: int | None) -> None:
    """The backstop against runaway allocations (never raises the current limit)."""
    if not limit_mb:
        return
    try:
        import resource
    except ImportError:  # not on this platform
        return
    limit = int(limit_mb) * 1024 * 1024
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    if soft == resource.RLIM_INFINITY or soft > limit:
        resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def _worker_main(argv: list[str]) -> int:
    import logging
    import traceback

    config = json.loads(argv[1])
    # Private protocol channels; fd 0 becomes /dev/null and fd 1 joins the log stream.
    requests = os.fdopen(os.dup(0), "rb")
    replies = os.fdopen(os.dup(1), "wb")
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    os.dup2(2, 1)

    def reply(message: dict) -> None:
        replies.write(json.dumps(message).encode() + b"\n")
        replies.flush()

    _cap_address_space(config.get("address_space_mb"))
    function_paths = list(config["function_paths"])
    sys.path[:0] = function_paths
    sys.path.extend(config["site_packages"])
    _install_module_guard(config["hidden_modules"], function_paths)
    if config.get("authorize"):
        ask_lock = threading.Lock()

        def ask(request: dict) -> dict | None:
            with ask_lock:  # one question on the wire at a time (handlers may use threads)
                reply({"authorize": request})
                return json.loads(requests.readline())["denied"]

        _install_iam_guard(ask)
    level = os.environ.get("AWS_LAMBDA_LOG_LEVEL", "WARNING").upper()
    logging.basicConfig(
        stream=sys.stdout,
        level=getattr(logging, level, logging.WARNING),
        format="[%(levelname)s]\t%(asctime)s.%(msecs)03dZ\t%(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
    )
    logging.Formatter.converter = time.gmtime

    started = time.monotonic()
    try:
        handler = _load_handler(config["handler"])
    except _InitError as exc:
        print(f"[ERROR] {exc.error_type}: {exc}", file=sys.stderr)
        reply(_error_message(exc, exc.error_type))
        return 1
    except Exception as exc:  # the module raised while importing
        traceback.print_exc()
        reply(_error_message(exc, "Runtime.ImportModuleError"))
        return 1
    reply({"ok": True, "init_ms": (time.monotonic() - started) * 1000})

    while True:
        header = requests.readline()
        if not header:
            return 0
        body = requests.readline()
        request = json.loads(header)
        request_id = request["id"]
        context = _Context(config, request_id, request["timeout_ms"])
        sys.stderr.write(f"START RequestId: {request_id} Version: $LATEST\n")
        t0 = time.monotonic()
        try:
            event = json.loads(body)
            result = handler(event, context)
            try:
                message = {"ok": True, "result": result}
                encoded = json.dumps(message)
            except (TypeError, ValueError) as exc:
                message = _error_message(exc, "Runtime.MarshalError")
                message["errorMessage"] = f"Unable to marshal response: {exc}"
                encoded = json.dumps(message)
        except MemoryError as exc:
            # Lambda kills a runtime over its memory; the environment is reset.
            message = _error_message(exc, "Runtime.OutOfMemory")
            message["errorMessage"] = (
                f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
            )
            sys.stderr.write(f"END RequestId: {request_id}\n")
            sys.stderr.write(f"REPORT RequestId: {request_id}\tStatus: error\t"
                             "Error Type: Runtime.OutOfMemory\n")
            sys.stderr.flush()
            reply(message)
            return 1
        except Exception as exc:
            message = _error_message(exc)
            encoded = json.dumps(message)
            print(f"[ERROR] {message['errorType']}: {message['errorMessage']}", file=sys.stderr)
            traceback.print_exception(type(exc), exc, _user_frames(exc), file=sys.stderr)
        sys.stdout.flush()
        duration = (time.monotonic() - t0) * 1000
        sys.stderr.write(f"END RequestId: {request_id}\n")
        sys.stderr.write(
            f"REPORT RequestId: {request_id}\tDuration: {duration:.2f} ms\t"
            f"Memory Size: {config['memory_mb']} MB\n"
        )
        sys.stderr.flush()
        replies.write(encoded.encode() + b"\n")
        replies.flush()


if __name__ == "__main__":
    sys.exit(_worker_main(sys.argv))
