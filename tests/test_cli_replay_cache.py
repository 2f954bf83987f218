"""``mikey respond --replay-cache URL``: the replay store the Responder remembers I_MESSAGEs in (RFC 3830 §5.4).

The Redis tests run against a real Redis: ``MIKEY_TEST_REDIS_URL`` (default
``redis://127.0.0.1:6379/0``), each in a key prefix of its own, removed afterwards.  Skipped
on a machine without Redis, but with ``CI`` set they fail instead (``.ci/run`` starts Redis).
"""

from __future__ import annotations

import json
import os
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from mikey.cli import main

PSK = "000102030405060708090a0b0c0d0e0f"
REDIS_URL = os.environ.get("MIKEY_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def _redis_down() -> str | None:
    try:
        import redis
    except ImportError as exc:
        return f"the redis package (extra 'redis') is not installed: {exc}"
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1, socket_timeout=1).ping()
    except (redis.RedisError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


_DOWN = _redis_down()
if _DOWN is not None and os.environ.get("CI"):
    raise RuntimeError(f"CI is set but Redis at {REDIS_URL} is not usable ({_DOWN}); .ci/run starts it")
needs_redis = pytest.mark.skipif(_DOWN is not None, reason=f"no Redis at {REDIS_URL}: {_DOWN}")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def i_message(capsys: pytest.CaptureFixture[str]) -> str:
    code, out, _ = run(capsys, "initiate", "--mode", "psk", "--psk", PSK, "--raw")
    assert code == 0
    return out.strip()


def respond(capsys: pytest.CaptureFixture[str], imsg: str, *extra: str) -> tuple[int, dict[str, Any]]:
    code, out, _ = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--json", *extra)
    obj: dict[str, Any] = json.loads(out)
    return code, obj


def _closed_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


@pytest.fixture
def redis_prefix() -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    import redis

    prefix = f"mikey:test:cli:{uuid.uuid4().hex}:"
    yield prefix
    client = redis.Redis.from_url(REDIS_URL)
    try:
        keys = list(client.scan_iter(match=prefix + "*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def test_default_memory_cache_lives_for_one_run(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --replay-cache each run has its own cache: the same I_MESSAGE is accepted by two runs."""
    imsg = i_message(capsys)
    assert respond(capsys, imsg)[0] == 0
    code, obj = respond(capsys, imsg, "--replay-cache", "memory:")
    assert code == 0 and obj["ok"] is True


@needs_redis
def test_redis_cache_refuses_a_replay_across_runs(capsys: pytest.CaptureFixture[str], redis_prefix: str) -> None:
    """Two Responders sharing a Redis namespace: the second refuses the I_MESSAGE the first accepted."""
    import redis

    url = f"{REDIS_URL}?prefix={redis_prefix}"
    imsg = i_message(capsys)
    code, first = respond(capsys, imsg, "--replay-cache", url)
    assert code == 0 and first["ok"] is True
    code, second = respond(capsys, imsg, "--replay-cache", url)
    assert code == 1 and second["ok"] is False
    assert second["error"]["kind"] == "replay" and second["error"]["err_no"] is None
    assert second["r_message"] is None  # a replay is discarded without an Error message (RFC 3830 §5.4)
    client = redis.Redis.from_url(REDIS_URL)
    try:
        assert list(client.scan_iter(match=redis_prefix + "*"))  # the first run did write there
    finally:
        client.close()
    # another namespace has not seen it
    code, other = respond(capsys, imsg, "--replay-cache", f"{REDIS_URL}?prefix={redis_prefix}other:")
    assert code == 0 and other["ok"] is True


@needs_redis
def test_unreachable_redis_is_one_line_and_refuses(capsys: pytest.CaptureFixture[str]) -> None:
    imsg = i_message(capsys)
    url = f"redis://:s3cret-pw@127.0.0.1:{_closed_port()}/0"
    code, out, err = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--replay-cache", url)
    assert code == 1
    assert err == "" and len(out.strip().splitlines()) == 1
    assert out.startswith("cannot use the replay cache: replay-store: ") and "Traceback" not in out
    assert "s3cret-pw" not in out
    code, obj = respond(capsys, imsg, "--replay-cache", url)
    assert code == 1 and obj["error"]["kind"] == "replay-store" and obj["r_message"] is None


@pytest.mark.parametrize("url", ["ftp://127.0.0.1/0", "memory:elsewhere", "redis://127.0.0.1:notaport/0"])
def test_malformed_replay_cache_url_is_a_usage_error(capsys: pytest.CaptureFixture[str], url: str) -> None:
    imsg = i_message(capsys)
    code, out, err = run(capsys, "respond", "--mode", "psk", "--psk", PSK, "--imsg", imsg, "--replay-cache", url)
    assert code == 2 and out == ""
    assert err.startswith("mikey: error: --replay-cache: ") and len(err.strip().splitlines()) == 1


def test_every_mode_passes_the_store_to_its_responder() -> None:
    """Each plugin's ``respond`` builds its Responder with :func:`responder_keywords` (own SSRCs and the store)."""
    import ast
    import inspect
    import textwrap

    from mikey.cli.plugins import load_plugins

    plugins = load_plugins()
    assert set(plugins) == {"psk", "pk", "rsa-r", "dh", "dhhmac", "sakke", "ticket", "ibake"}
    for name, plugin in plugins.items():
        tree = ast.parse(textwrap.dedent(inspect.getsource(type(plugin).respond)))
        calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and ast.unparse(n.func) == "responder_keywords"]
        assert len(calls) == 1, name
