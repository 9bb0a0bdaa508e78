"""LocalFunction: one worker process per function, Lambda's error and timeout semantics."""

from __future__ import annotations

import shutil
import textwrap
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from ddb_stream_patterns.local.functions import (
    FunctionError,
    FunctionTimeout,
    LocalFunction,
    layer_python_paths,
)

REPO = Path(__file__).resolve().parents[2]

INDEX = '''
import os
import sys
import time

CALLS = 0
print("init", os.environ["WHO"])


def handler(event, context):
    global CALLS
    CALLS += 1
    print("handling", os.environ["WHO"], event.get("n"))
    if "raise" in event:
        raise ValueError(f"bad input from {os.environ['WHO']}")
    if "sleep" in event:
        time.sleep(event["sleep"])
    if "exit" in event:
        sys.exit(3)
    if "os_exit" in event:
        os._exit(7)
    if "kill" in event:
        os.kill(os.getpid(), 9)
    if "allocate_mb" in event:
        hoard = b"x" * (event["allocate_mb"] * 1024 * 1024)  # touched, so resident
        return {"calls": CALLS, "allocated": len(hoard)}
    if "unjsonable" in event:
        return {1, 2}
    return {
        "who": os.environ["WHO"],
        "module": __file__,
        "calls": CALLS,
        "name": os.environ["AWS_LAMBDA_FUNCTION_NAME"],
        "context_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request_id": context.aws_request_id,
    }
'''


@pytest.fixture
def make_function(tmp_path: Path) -> Iterator[Callable[..., LocalFunction]]:
    created: list[LocalFunction] = []

    def make(who: str, source: str = INDEX, handler: str = "index.handler", **kwargs) -> LocalFunction:
        code = tmp_path / who
        code.mkdir()
        (code / "index.py").write_text(textwrap.dedent(source))
        kwargs.setdefault("environment", {"WHO": who})
        fn = LocalFunction(f"fn-{who}", handler, code, **kwargs)
        created.append(fn)
        return fn

    yield make
    for fn in created:
        fn.close()


def test_functions_with_the_same_module_name_stay_isolated(make_function) -> None:
    a, b = make_function("a"), make_function("b")
    first_a, first_b = a.invoke({"n": 1}), b.invoke({"n": 1})
    assert (first_a["who"], first_b["who"]) == ("a", "b")
    assert first_a["module"].endswith("/a/index.py") and first_b["module"].endswith("/b/index.py")
    assert a.invoke({"n": 2})["calls"] == 2  # module state lives on between invocations...
    assert b.invoke({"n": 2})["calls"] == 2  # ...per function
    assert first_a["name"] == first_a["context_name"] == "fn-a"
    assert 0 < first_a["remaining_ms"] <= 3000
    assert (a.invocations, a.errors, a.cold_starts) == (2, 0, 1)
    assert any(line == "handling a 2" for line in a.logs)
    assert not any("handling b" in line for line in a.logs)


def test_handler_exception_is_a_function_error(make_function) -> None:
    fn = make_function("err")
    with pytest.raises(FunctionError) as info:
        fn.invoke({"raise": True})
    assert info.value.error_type == "ValueError"
    assert info.value.message == "bad input from err"
    assert any("index.py" in frame for frame in info.value.stack_trace)
    assert not any("functions.py" in frame for frame in info.value.stack_trace)
    assert fn.last_invocation.error_type == "ValueError"
    assert "[ERROR] ValueError: bad input from err" in fn.last_invocation.logs
    # the same worker carries on
    assert fn.invoke({})["calls"] == 2
    assert (fn.invocations, fn.errors, fn.cold_starts) == (2, 1, 1)


def test_timeout_kills_the_worker_and_the_next_invoke_recovers(make_function) -> None:
    fn = make_function("slow", timeout_s=0.5)
    assert fn.invoke({})["calls"] == 1
    with pytest.raises(TimeoutError, match="Task timed out after 0.50 seconds") as info:
        fn.invoke({"sleep": 30})
    # Lambda's error type and message (and still a TimeoutError for callers that catch it)
    assert isinstance(info.value, FunctionTimeout) and isinstance(info.value, FunctionError)
    assert info.value.error_type == "Sandbox.Timedout"
    request_id = fn.last_invocation.request_id
    assert info.value.message == (
        f"RequestId: {request_id} Error: Task timed out after 0.50 seconds"
    )
    assert fn.last_invocation.error_type == "Sandbox.Timedout"
    assert not fn.running
    assert fn.timeouts == 1 and fn.errors == 1
    assert any("Task timed out" in line for line in fn.logs)
    result = fn.invoke({})
    assert result["calls"] == 1  # a fresh process: module state starts over
    assert fn.cold_starts == 2


def test_logs_follow_lambdas_shape(make_function) -> None:
    fn = make_function("logs", log_limit=8)
    fn.invoke({"n": 7})
    invocation = fn.last_invocation
    request_id = invocation.request_id
    assert invocation.logs[0] == "init logs"  # init output precedes the first START
    assert invocation.logs[1] == f"START RequestId: {request_id} Version: $LATEST"
    assert "handling logs 7" in invocation.logs
    assert invocation.logs[-2] == f"END RequestId: {request_id}"
    assert invocation.logs[-1].startswith(f"REPORT RequestId: {request_id}\tDuration: ")
    for n in range(5):
        fn.invoke({"n": n})
    assert len(fn.logs) == 8  # only the most recent lines are kept
    fn.clear_logs()
    assert fn.logs == []


def test_runtime_errors(make_function) -> None:
    missing = make_function("missing", handler="index.nope")
    with pytest.raises(FunctionError) as info:
        missing.invoke({})
    assert info.value.error_type == "Runtime.HandlerNotFound"

    broken = make_function("broken", source="import not_a_module_anywhere\n")
    with pytest.raises(FunctionError) as info:
        broken.invoke({})
    assert info.value.error_type == "Runtime.ImportModuleError"
    assert "not_a_module_anywhere" in info.value.message

    fn = make_function("odd")
    with pytest.raises(FunctionError) as info:
        fn.invoke({"unjsonable": True})
    assert info.value.error_type == "Runtime.MarshalError"
    with pytest.raises(FunctionError) as info:
        fn.invoke({"exit": True})
    assert info.value.error_type == "Runtime.ExitError"
    assert fn.invoke({})["calls"] == 1  # restarted
    assert fn.errors == 2


def test_runtime_comes_from_code_or_layers_never_from_the_repository(
    make_function, tmp_path: Path
) -> None:
    source = '''
    def handler(event, context):
        import ddb_stream_runtime
        return ddb_stream_runtime.__file__
    '''
    bare = make_function("bare", source=source)
    with pytest.raises(FunctionError) as info:
        bare.invoke({})
    assert info.value.error_type == "ModuleNotFoundError"  # despite the editable install

    layer = tmp_path / "layer"
    shutil.copytree(
        REPO / "lambda_src" / "ddb_stream_runtime",
        layer / "python" / "ddb_stream_runtime",
        ignore=shutil.ignore_patterns("__pycache__"),
    )
    assert layer_python_paths([layer]) == [str(layer / "python")]
    layered = make_function("layered", source=source, layer_dirs=[layer])
    assert layered.invoke({}).startswith(str(layer / "python"))
    assert not list(layer.rglob("__pycache__"))  # workers never write bytecode into assets


def test_concurrent_invokes_are_serialized(make_function) -> None:
    fn = make_function("busy")
    results: list[int] = []

    def call() -> None:
        results.append(fn.invoke({"sleep": 0.05})["calls"])

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [1, 2, 3, 4]


def test_bad_code_dir_and_close(tmp_path: Path, make_function) -> None:
    with pytest.raises(FileNotFoundError):
        LocalFunction("x", "index.handler", tmp_path / "absent")
    fn = make_function("closing").start()
    assert fn.running
    fn.close()
    fn.close()
    assert not fn.running


@pytest.mark.parametrize(
    ("event", "reason"),
    [
        ({"exit": True}, "exit status 3"),  # sys.exit(3)
        ({"os_exit": True}, "exit status 7"),  # os._exit(7): no Python code runs after it
        ({"kill": True}, "signal: killed"),  # SIGKILL
    ],
)
def test_a_runtime_that_exits_is_an_exit_error_and_is_replaced(make_function, event, reason):
    fn = make_function("exits")
    assert fn.invoke({})["calls"] == 1
    with pytest.raises(FunctionError) as info:
        fn.invoke(event)
    request_id = fn.last_invocation.request_id
    assert info.value.error_type == "Runtime.ExitError"
    assert info.value.message == f"RequestId: {request_id} Error: Runtime exited with error: {reason}"
    assert "Runtime.ExitError" in fn.last_invocation.logs
    assert fn.last_invocation.logs[-1].endswith("Error Type: Runtime.ExitError")
    assert not fn.running
    assert fn.invoke({})["calls"] == 1  # a fresh worker: module state starts over
    assert (fn.errors, fn.cold_starts) == (1, 2)


def test_memory_size_is_enforced_on_resident_memory(make_function) -> None:
    fn = make_function("memory", memory_mb=128)
    assert fn.invoke({"allocate_mb": 32})["allocated"] == 32 * 1024 * 1024  # within its size
    # Past its MemorySize the worker is killed, even if the handler would have returned.
    with pytest.raises(FunctionError) as info:
        fn.invoke({"allocate_mb": 200})
    request_id = fn.last_invocation.request_id
    assert info.value.error_type == "Runtime.OutOfMemory"
    assert info.value.message == (
        f"RequestId: {request_id} Error: Runtime exited with error: signal: killed"
    )
    assert fn.last_invocation.logs[-1].endswith("Error Type: Runtime.OutOfMemory")
    assert not fn.running and fn.out_of_memory == 1
    assert fn.invoke({})["calls"] == 1  # replaced
    assert fn.cold_starts == 2


def test_a_memory_error_that_escapes_the_handler_is_out_of_memory(make_function) -> None:
    fn = make_function("huge", memory_mb=128)
    # Past the address-space backstop the allocation fails at once with MemoryError.
    with pytest.raises(FunctionError) as info:
        fn.invoke({"allocate_mb": 4096})
    assert info.value.error_type == "Runtime.OutOfMemory"
    assert fn.out_of_memory == 1
    assert fn.invoke({})["calls"] == 1  # replaced


def test_authorizer_denies_a_call_with_the_services_error(tmp_path):
    """Each botocore call is checked before it is sent; a denial is the service's ClientError."""
    (tmp_path / "index.py").write_text(
        "import boto3\n"
        "def handler(event, context):\n"
        "    ddb = boto3.client('dynamodb')\n"
        "    try:\n"
        "        ddb.put_item(TableName='T', Item={'k': {'S': 'v'}})\n"
        "    except ddb.exceptions.ClientError as exc:\n"
        "        return [type(exc).__name__, exc.response['Error'], "
        "exc.response['ResponseMetadata']['HTTPStatusCode']]\n"
    )
    asked = []

    def authorizer(request):
        asked.append(request)
        return {"code": "AccessDeniedException", "status": 400, "message": "no"}

    env = {"AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x",
           "AWS_DEFAULT_REGION": "us-east-1", "AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    with LocalFunction("authz", "index.handler", tmp_path, environment=env, memory_mb=512,
                       timeout_s=30, authorizer=authorizer) as fn:
        result = fn.invoke({})
    assert asked == [{"prefix": "dynamodb", "operation": "PutItem",
                      "params": {"TableNames": ["T"]}}]
    assert result == ["ClientError", {"Code": "AccessDeniedException", "Message": "no"}, 400]
    assert fn.denied == 1
