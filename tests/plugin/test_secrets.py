"""A Redis password appears nowhere a run writes, on any failure path (issue 14).

A password is planted in the ``--p1-redis`` URL of a private redis-server
(user ``alice`` created with it), and every output of every failure path is
searched for it: the terminal (each ``--tb`` style, ``-l``, ``-vv``, live logs),
the JUnit XML, the log file, the JSON and HTML reports, and usage errors. The
paths: a criterion that fails, criteria that cannot reach Redis (errors), a
user's test that fails showing the fixtures, a wrong password, and every kind
of bad value of the option.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from pytest_quantum_p1 import _options
from pytest_quantum_p1._redis.server import RedisServer, free_port, require_redis_server
from pytest_quantum_p1._redis.url import RedisURL, redact_text
from tests.plugin import broken_targets as broken
from tests.plugin.broken_targets import run_p1

#: Written percent-encoded in the URL (``%40`` is ``@``); searched for in both forms.
PLANTED = "Pl4nted-S3cr3t@x"
PLANTED_IN_URL = "Pl4nted-S3cr3t%40x"
#: A piece of the password both forms contain.
NEEDLE = "Pl4nted-S3cr3t"

OUTPUT_FORMS = {
    "long-locals": ("--tb=long", "-l", "-vv"),
    "short": ("--tb=short",),
    "native": ("--tb=native", "-l"),
    "line": ("--tb=line", "-rA"),
    "live-logs": ("--log-cli-level=DEBUG", "-l"),
    "xdist": ("-p", "xdist", "-n", "2", "-l"),
}


@pytest.fixture(scope="module")
def alice_server() -> Iterator[RedisServer]:
    """A private server of this module's own, with a user ``alice`` whose password is planted."""
    with require_redis_server() as server:
        with redis.Redis.from_url(server.url) as admin:
            admin.acl_setuser(
                "alice",
                enabled=True,
                passwords=[f"+{PLANTED}"],
                keys=["*"],
                channels=["*"],
                commands=["+@all"],
            )
        yield server


def _url(server: RedisServer, password: str = PLANTED_IN_URL, port: int | None = None) -> str:
    return f"redis://alice:{password}@127.0.0.1:{port or server.port}/0"


def _everything_written(result: pytest.RunResult, root: Path) -> str:
    """What the run printed and every file it wrote under ``root``."""
    texts = [result.stdout.str(), result.stderr.str()]
    for path in root.rglob("*"):
        if path.is_file() and path.suffix in (".xml", ".json", ".html", ".log"):
            texts.append(path.read_text(encoding="utf-8", errors="replace"))
    return "\n".join(texts)


def _assert_no_secret(text: str) -> None:
    for form in (NEEDLE, PLANTED, PLANTED_IN_URL):
        assert form not in text


def _outputs(pytester: pytest.Pytester, form: str) -> tuple[str, ...]:
    return (
        *OUTPUT_FORMS[form],
        f"--junitxml={pytester.path / 'junit.xml'}",
        f"--log-file={pytester.path / 'run.log'}",
        "--log-file-level=DEBUG",
    )


@pytest.mark.real_redis
@pytest.mark.parametrize("form", list(OUTPUT_FORMS))
def test_a_failing_criterion_writes_no_password(
    pytester: pytest.Pytester, alice_server: RedisServer, form: str
) -> None:
    result = run_p1(
        pytester,
        f"--p1-redis={_url(alice_server)}",
        f"--p1-report={pytester.path / 'p1.json'}",
        "-k",
        "P1-2.invalidation or P1-2.ttl",
        *_outputs(pytester, form),
        target=broken.store_that_ignores_invalidations,
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*FAIL*P1-2.invalidation*"])
    text = _everything_written(result, pytester.path)
    assert "redis://alice:***@127.0.0.1" in text  # the header and reports still say where
    _assert_no_secret(text)


@pytest.mark.parametrize("form", list(OUTPUT_FORMS))
def test_criteria_that_cannot_reach_redis_write_no_password(
    pytester: pytest.Pytester, form: str
) -> None:
    # Nothing listens on the port: every criterion that needs Redis is an error.
    url = f"redis://alice:{PLANTED_IN_URL}@127.0.0.1:{free_port()}/0"
    result = run_p1(
        pytester,
        f"--p1-redis={url}",
        f"--p1-report={pytester.path / 'p1.json'}",
        "-k",
        "P1-2.cached-read or P1-2.invalidation or deploy",
        *_outputs(pytester, form),
    )
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*ERROR*P1-2.cached-read*"])
    _assert_no_secret(_everything_written(result, pytester.path))


_USER_TESTS = """
import asyncio

def test_fails_showing_its_fixtures(p1_settings, p1_redis, p1_redis_factory):
    client = p1_redis_factory()
    url = p1_settings.redis
    assert asyncio.run(p1_redis.ping()) and not url, (p1_settings, client)

def test_fails_inside_redis(p1_redis):
    asyncio.run(p1_redis.execute_command("NO-SUCH-COMMAND"))
"""


@pytest.mark.real_redis
@pytest.mark.parametrize("form", list(OUTPUT_FORMS))
def test_a_users_failing_test_writes_no_password(
    pytester: pytest.Pytester, alice_server: RedisServer, form: str
) -> None:
    pytester.makepyfile(_USER_TESTS)
    result = pytester.runpytest(
        "-p", "quantum_p1", f"--p1-redis={_url(alice_server)}", *_outputs(pytester, form)
    )
    result.assert_outcomes(failed=2)
    _assert_no_secret(_everything_written(result, pytester.path))


@pytest.mark.real_redis
@pytest.mark.parametrize("form", list(OUTPUT_FORMS))
def test_a_wrong_password_writes_neither_password(
    pytester: pytest.Pytester, alice_server: RedisServer, form: str
) -> None:
    wrong = "Wr0ng-Pl4nted-S3cr3t"
    pytester.makepyfile(
        """
        import asyncio

        def test_uses_redis(p1_redis):
            asyncio.run(p1_redis.ping())
        """
    )
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        f"--p1-redis={_url(alice_server, password=wrong)}",
        *_outputs(pytester, form),
    )
    result.assert_outcomes(failed=1)
    text = _everything_written(result, pytester.path)
    assert "WRONGPASS" in text or "invalid username-password" in text
    assert wrong not in text
    _assert_no_secret(text)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param(f"redis://alice:{PLANTED_IN_URL}@127.0.0.1:99999/0", id="bad-port"),
        pytest.param(f"http://alice:{PLANTED_IN_URL}@127.0.0.1:6390/0", id="wrong-scheme"),
        pytest.param("redis://alice:Pl4nted-S3cr3t#x@127.0.0.1:6390/0", id="unencoded-hash"),
        pytest.param("redis://alice:Pl4nted-S3cr3t?x@127.0.0.1:port/0", id="unencoded-question"),
        pytest.param("redis://alice:Pl4nted 'S3cr3t@127.0.0.1:x/0", id="quote-and-space"),
    ],
)
@pytest.mark.parametrize("where", ["option", "ini"])
def test_a_bad_redis_value_is_a_usage_error_without_the_password(
    pytester: pytest.Pytester, value: str, where: str
) -> None:
    if where == "ini":
        pytester.makeini(f"[pytest]\n{_options.INI_REDIS} = {value}\n")
        result = pytester.runpytest("-p", "quantum_p1")
    else:
        result = pytester.runpytest("-p", "quantum_p1", f"{_options.OPT_REDIS}={value}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert "expected 'fake', 'server' or a redis:// or rediss:// URL" in text
    assert "alice:***@" in text or "alice:***" in text
    _assert_no_secret(text)


def test_a_url_in_a_bad_boolean_ini_value_is_a_usage_error_without_the_password(
    pytester: pytest.Pytester,
) -> None:
    pytester.makeini(
        f"[pytest]\n{_options.INI_REDIS_OWNED} = redis://alice:{PLANTED_IN_URL}@h:1/0\n"
    )
    result = pytester.runpytest("-p", "quantum_p1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    text = result.stdout.str() + result.stderr.str()
    assert f"{_options.INI_REDIS_OWNED} (ini): expected a boolean" in text
    _assert_no_secret(text)


def test_the_url_type_redacts_itself_everywhere_it_is_shown() -> None:
    url = RedisURL(f"redis://alice:{PLANTED_IN_URL}@h:1/0?password=Pl4nted-S3cr3t-q")
    for shown in (str(url), repr(url), f"{url}", repr([url]), repr({"u": url})):
        _assert_no_secret(shown)
    assert url.reveal().startswith(f"redis://alice:{PLANTED_IN_URL}@")
    assert set(url.secrets()) >= {PLANTED_IN_URL, PLANTED, "Pl4nted-S3cr3t-q"}
    # A URL without a password is shown as it is.
    assert str(RedisURL("redis://h:1/0")) == "redis://h:1/0"


def test_redacting_free_text_masks_each_url_and_keeps_the_rest() -> None:
    text = "got 'redis://u:p#w@h:1/0' and rediss://:pw@h2 and redis://h3:1/0"
    assert redact_text(text) == "got 'redis://u:***@h:1/0' and rediss://:***@h2 and redis://h3:1/0"


@pytest.mark.real_redis
def test_a_client_made_from_the_url_still_authenticates(alice_server: RedisServer) -> None:
    from pytest_quantum_p1._redis.source import RedisSource

    source = RedisSource.external(_url(alice_server))
    assert "***" in str(source)
    assert "***" in repr(source)

    async def whoami() -> str:
        client = source.client(decode_responses=True)
        try:
            return str(await client.acl_whoami())
        finally:
            await client.aclose()

    assert asyncio.run(whoami()) == "alice"


@pytest.mark.parametrize("tb", ["long", "native"])
def test_an_internal_error_writes_no_password(pytester: pytest.Pytester, tb: str) -> None:
    # A hook of the user's that crashes pytest itself, holding the URL in a local:
    # the INTERNALERROR block prints every frame's locals with -l. No server is
    # needed: nothing connects.
    pytester.makeconftest(
        """
        def pytest_collection_finish(session):
            url = session.config.getoption("p1_redis")
            raise RuntimeError("crashed while holding " + url)
        """
    )
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        f"--p1-redis=redis://alice:{PLANTED_IN_URL}@127.0.0.1:1/0",
        "-l",
        f"--tb={tb}",
    )
    assert result.ret == pytest.ExitCode.INTERNAL_ERROR
    written = _everything_written(result, pytester.path)
    assert "INTERNALERROR" in written
    assert "crashed while holding redis://alice:***@" in written
    _assert_no_secret(written)
