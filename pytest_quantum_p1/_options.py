"""The plugin's options: names, registration, parsing and validation.

Every option has a CLI form (``--p1-...``) and an ini twin (``p1_...``); the
command line wins. Values are validated once, in ``pytest_configure``, into a
frozen :class:`P1Settings` kept in ``config.stash`` under :data:`SETTINGS_KEY`;
a bad value is a :class:`pytest.UsageError` naming the valid ones.

The names are module constants so the tests (and other modules) import them
instead of repeating strings.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

import pytest

from pytest_quantum_p1 import _messages
from pytest_quantum_p1._redis.url import RedisURL, redact_text, redact_value
from pytest_quantum_p1._target import TARGET_NAMES
from pytest_quantum_p1._units import format_duration, parse_duration

__all__ = [
    "DEFAULT_INSTANCES",
    "DEFAULT_LATENCY_BUDGET",
    "DEFAULT_TIMEOUT",
    "GROUP",
    "INI_INSTANCES",
    "INI_LATENCY_BUDGET",
    "INI_REDIS",
    "INI_REDIS_BINARY",
    "INI_REDIS_OWNED",
    "INI_REPORT",
    "INI_RUN",
    "INI_SCENARIOS",
    "INI_TARGET",
    "INI_TIMEOUT",
    "INI_WORKLOAD",
    "MARKERS",
    "MAX_INSTANCES",
    "OPT_INSTANCES",
    "OPT_LATENCY_BUDGET",
    "OPT_REDIS",
    "OPT_REDIS_BINARY",
    "OPT_REDIS_OWNED",
    "OPT_REPORT",
    "OPT_RUN",
    "OPT_SCENARIOS",
    "OPT_TARGET",
    "OPT_TIMEOUT",
    "OPT_WORKLOAD",
    "SETTINGS_KEY",
    "P1Settings",
    "RedisMode",
    "Workload",
    "extra_for_report",
    "extra_line",
    "header_line",
    "redis_for_report",
    "register_options",
    "settings_from_config",
]

GROUP = "quantum-p1"


OPT_TARGET = "--p1-target"
OPT_REDIS = "--p1-redis"
OPT_REDIS_BINARY = "--p1-redis-binary"
OPT_REDIS_OWNED = "--p1-redis-owned"
OPT_RUN = "--p1"
OPT_REPORT = "--p1-report"
OPT_LATENCY_BUDGET = "--p1-latency-budget"
OPT_INSTANCES = "--p1-instances"
OPT_WORKLOAD = "--p1-workload"
OPT_TIMEOUT = "--p1-timeout"
OPT_SCENARIOS = "--p1-scenarios"

INI_TARGET = "p1_target"
INI_REDIS = "p1_redis"
INI_REDIS_BINARY = "p1_redis_binary"
INI_REDIS_OWNED = "p1_redis_owned"
INI_RUN = "p1"
INI_REPORT = "p1_report"
INI_LATENCY_BUDGET = "p1_latency_budget"
INI_INSTANCES = "p1_instances"
INI_WORKLOAD = "p1_workload"
INI_TIMEOUT = "p1_timeout"
INI_SCENARIOS = "p1_scenarios"

DEFAULT_REDIS = "fake"
DEFAULT_LATENCY_BUDGET = "1ms"
DEFAULT_INSTANCES = 4
#: The most instances the cluster checks start: each is a store with a client and a
#: listener of its own, and every update waits for all of them.
MAX_INSTANCES = 64
#: Scenarios ``P1-2.no-stale-reads`` runs at least (the state machine's examples).
DEFAULT_SCENARIOS = 200
#: The deadline of an ordinary criterion; the long-running ones get a multiple of it
#: (``_acceptance.criteria.DEADLINE_FACTORS``).
DEFAULT_TIMEOUT = "30s"

#: Registered in ``pytest_configure`` so ``--strict-markers`` accepts them.
MARKERS = (
    "publishes(name, **fields): the test fails unless it published the event `name` "
    "on the target's bus with a payload containing `fields` (repeatable; quantum-p1)",
    "forbid_v2: the test fails if the federation v2 engine class is constructed "
    "outside the bridge modules while it runs (quantum-p1)",
)

RedisMode = Literal["fake", "server", "url", "cluster", "cluster-url"]
#: ``--p1-redis=cluster``: a private Redis Cluster of this shape (masters, replicas each).
CLUSTER_SHAPE = (3, 1)
#: The scheme suffix that marks an external Redis Cluster: ``redis+cluster://host:port``.
CLUSTER_SCHEME_SUFFIX = "+cluster"


@dataclass(frozen=True)
class Workload:
    """The operation simulated by ``P1-2.hit-rate``, on the virtual clock.

    Set with ``--p1-workload`` / ini ``p1_workload`` as ``key=value`` pairs,
    e.g. ``policies=50,reads_per_s=500,updates_per_min=12``.
    """

    minutes: float = 5.0
    policies: int = 20
    reads_per_s: float = 200.0
    updates_per_min: float = 6.0
    instances: int = 2
    #: Zipf exponent of policy popularity: a few policies take most reads.
    skew: float = 1.0
    step_s: float = 0.1
    seed: int = 20251203

    @classmethod
    def parse(cls, text: str) -> Workload:
        """``"k=v,k=v"`` over the defaults; ValueError names the bad part."""
        fields = {name: type(value) for name, value in vars(cls()).items()}
        values: dict[str, Any] = {}
        for part in filter(None, (p.strip() for p in text.split(","))):
            key, eq, raw = part.partition("=")
            key = key.strip()
            if not eq or key not in fields:
                raise ValueError(part)
            try:
                number = fields[key](raw.strip())
            except ValueError:
                raise ValueError(part) from None
            # Everything but the update rate and the skew must be positive.
            if number < 0 or (not number and key not in ("updates_per_min", "skew", "seed")):
                raise ValueError(part)
            values[key] = number
        return cls(**values)


@dataclass(frozen=True)
class P1Settings:
    """The effective, validated settings of one pytest run."""

    #: ``package.module:attr`` of the target (not imported until needed); ``None``
    #: when none is configured (fixtures that need one then fail, ``--p1`` is refused).
    target: str | None
    #: ``"fake"``, ``"server"`` or a ``redis://`` / ``rediss://`` URL (a
    #: :class:`~pytest_quantum_p1._redis.url.RedisURL`: shown without its password).
    redis: str | RedisURL
    #: The redis-server executable for ``redis="server"``; ``None``: find it on PATH.
    redis_binary: str | None
    #: Whether ``--p1`` (the acceptance run) was asked for.
    run: bool
    #: Where the acceptance run writes its JSON report, if anywhere.
    report: Path | None
    #: The latency budget of cached reads, in nanoseconds.
    latency_budget_ns: int
    #: How many store instances the cluster checks start.
    instances: int
    #: The simulated operation of the hit-rate check.
    workload: Workload = Workload()
    #: Where :attr:`target` came from, for error messages (an option or ini key).
    target_source: str = OPT_TARGET
    #: The deadline of an ordinary acceptance criterion, in nanoseconds
    #: (``--p1-timeout``); the long-running criteria get a multiple of it.
    timeout_ns: int = 30_000_000_000
    #: Scenarios ``P1-2.no-stale-reads`` runs at least (``--p1-scenarios``).
    scenarios: int = DEFAULT_SCENARIOS
    #: The user declared the URL's database the harness's own (``--p1-redis-owned``):
    #: it is emptied before each test that uses it.
    redis_owned: bool = False

    @property
    def secrets(self) -> tuple[str, ...]:
        """Texts no output of the run may contain: the Redis URL's password, if any."""
        return self.redis.secrets() if isinstance(self.redis, RedisURL) else ()

    @property
    def redis_mode(self) -> RedisMode:
        """``"fake"``, ``"server"``, ``"url"``, ``"cluster"`` (a private one) or
        ``"cluster-url"`` (``redis+cluster://``)."""
        if self.redis == "fake":
            return "fake"
        if self.redis == "server":
            return "server"
        if self.redis == "cluster":
            return "cluster"
        if isinstance(self.redis, RedisURL) and is_cluster_url(self.redis.reveal()):
            return "cluster-url"
        return "url"


#: The validated settings of the run (set in ``pytest_configure``).
SETTINGS_KEY = pytest.StashKey[P1Settings]()


def register_options(parser: pytest.Parser) -> None:
    """Add the ``quantum-p1`` option group and the ini twins to ``parser``."""
    group = parser.getgroup(GROUP, "quantum-p1: prove the P1 maintenance promises")
    group.addoption(
        OPT_TARGET,
        dest=INI_TARGET,
        default=None,
        metavar="MODULE:ATTR",
        help="the P1Target to check, as package.module:attr, or 'reference' for the bundled "
        "example backend (no default: name yours). "
        f"ini: {INI_TARGET}",
    )
    group.addoption(
        OPT_REDIS,
        dest=INI_REDIS,
        default=None,
        metavar="fake|server|cluster|URL",
        help="Redis for the fixtures: 'fake' (fakeredis, the default), 'server' (a private "
        "redis-server on a free loopback port), 'cluster' (a private Redis Cluster, 3 masters "
        "+ 3 replicas on free loopback ports), a redis:// / rediss:// URL, or a Redis Cluster "
        "by the URL of one node: redis+cluster:// / rediss+cluster:// (URLs are never flushed; "
        "the harness writes only keys holding a namespace of its own, and removes them). "
        f"ini: {INI_REDIS}",
    )
    group.addoption(
        OPT_REDIS_OWNED,
        dest=INI_REDIS_OWNED,
        action="store_true",
        default=None,
        help=f"declare the database of the {OPT_REDIS} URL the harness's own: it is emptied "
        f"(FLUSHDB) before each test that uses it. ini: {INI_REDIS_OWNED}",
    )
    group.addoption(
        OPT_REDIS_BINARY,
        dest=INI_REDIS_BINARY,
        default=None,
        metavar="PATH",
        help="the redis-server executable for --p1-redis=server or cluster (default: redis-server "
        f"on PATH). ini: {INI_REDIS_BINARY}",
    )
    group.addoption(
        OPT_RUN,
        dest=INI_RUN,
        action="store_true",
        default=None,
        help=f"run the P1 acceptance checks against the target. ini: {INI_RUN}",
    )
    group.addoption(
        OPT_REPORT,
        dest=INI_REPORT,
        default=None,
        metavar="PATH",
        help="write the acceptance report as JSON to PATH and, beside it, a self-contained "
        f"HTML page with charts (PATH with .html; with {OPT_RUN}). ini: {INI_REPORT}",
    )
    group.addoption(
        OPT_LATENCY_BUDGET,
        dest=INI_LATENCY_BUDGET,
        default=None,
        metavar="DURATION",
        help="p99 budget of a cached policy read, e.g. 1ms, 250us, 500ns "
        f"(default: {DEFAULT_LATENCY_BUDGET}). ini: {INI_LATENCY_BUDGET}",
    )
    group.addoption(
        OPT_INSTANCES,
        dest=INI_INSTANCES,
        default=None,
        metavar="N",
        help="store instances sharing one Redis in the invalidation checks, 2 to "
        f"{MAX_INSTANCES} (default: {DEFAULT_INSTANCES}). ini: {INI_INSTANCES}",
    )

    group.addoption(
        OPT_WORKLOAD,
        dest=INI_WORKLOAD,
        default=None,
        metavar="K=V,...",
        help="the operation simulated by the hit-rate check: minutes, policies, reads_per_s, "
        "updates_per_min, instances, skew, step_s, seed (default: minutes=5,policies=20,"
        f"reads_per_s=200,updates_per_min=6,instances=2). ini: {INI_WORKLOAD}",
    )

    group.addoption(
        OPT_TIMEOUT,
        dest=INI_TIMEOUT,
        default=None,
        metavar="DURATION",
        help="deadline of each acceptance criterion, e.g. 30s, 2s; the hit-rate simulation and "
        "the stale-read search get 4 times it. A criterion whose call into the target does not "
        f"return in time fails, naming the call (default: {DEFAULT_TIMEOUT}). ini: {INI_TIMEOUT}",
    )

    group.addoption(
        OPT_SCENARIOS,
        dest=INI_SCENARIOS,
        default=None,
        metavar="N",
        help="scenarios the stale-read search (P1-2.no-stale-reads) runs at least, the same "
        f"ones in every run (default: {DEFAULT_SCENARIOS}). ini: {INI_SCENARIOS}",
    )

    parser.addini(INI_TARGET, f"quantum-p1: same as {OPT_TARGET}", default="")
    parser.addini(
        INI_SCENARIOS, f"quantum-p1: same as {OPT_SCENARIOS}", type="int", default=DEFAULT_SCENARIOS
    )
    parser.addini(INI_TIMEOUT, f"quantum-p1: same as {OPT_TIMEOUT}", default=DEFAULT_TIMEOUT)
    parser.addini(INI_WORKLOAD, f"quantum-p1: same as {OPT_WORKLOAD}", default="")
    parser.addini(INI_REDIS, f"quantum-p1: same as {OPT_REDIS}", default=DEFAULT_REDIS)
    parser.addini(INI_REDIS_BINARY, f"quantum-p1: same as {OPT_REDIS_BINARY}", default="")
    parser.addini(
        INI_REDIS_OWNED, f"quantum-p1: same as {OPT_REDIS_OWNED}", type="bool", default=False
    )
    parser.addini(INI_RUN, f"quantum-p1: same as {OPT_RUN}", type="bool", default=False)
    parser.addini(INI_REPORT, f"quantum-p1: same as {OPT_REPORT}", default="")
    parser.addini(
        INI_LATENCY_BUDGET,
        f"quantum-p1: same as {OPT_LATENCY_BUDGET}",
        default=DEFAULT_LATENCY_BUDGET,
    )
    parser.addini(
        INI_INSTANCES, f"quantum-p1: same as {OPT_INSTANCES}", type="int", default=DEFAULT_INSTANCES
    )


def _is_dotted_name(text: str) -> bool:
    return all(part.isidentifier() for part in text.split("."))


def _usage_error(source: str, expected: str, value: object) -> pytest.UsageError:
    return pytest.UsageError(
        _redacted(_messages.USAGE_BAD_VALUE.format(source=source, expected=expected, value=value))
    )


def _redacted(text: str) -> str:
    """A usage error's text with any URL password masked: it quotes what the user gave."""
    text = redact_text(text)
    # What the pattern cannot delimit (a password holding a quote or a space) by value.
    for word in filter(lambda w: "://" in w, text.split()):
        for secret in RedisURL(word.strip("'\"")).secrets():
            if secret != "***":
                text = text.replace(secret, "***")
    return text


def _ini_source(ini: str) -> str:
    return f"{ini} (ini)"


def _raw(config: pytest.Config, ini: str, expected: str) -> tuple[Any, str, Path]:
    """The raw value of one setting, where it came from, and the base for relative paths."""
    value = config.getoption(ini)
    if value is not None:
        return value, _OPTION_OF_INI[ini], config.invocation_params.dir
    try:
        value = config.getini(ini)
    except (ValueError, TypeError, pytest.UsageError) as exc:
        # pytest's own coercion of a bool/int ini value failed (pytest >= 9.2 raises
        # it as a UsageError of its own, naming neither the key nor the valid
        # values): said with both, and pytest's text, which quotes the value.
        raise pytest.UsageError(
            _redacted(
                _messages.USAGE_BAD_INI.format(
                    source=_ini_source(ini), expected=expected, error=exc
                )
            )
        ) from None
    base = config.inipath.parent if config.inipath is not None else config.rootpath
    return value, _ini_source(ini), base


_OPTION_OF_INI = {
    INI_TARGET: OPT_TARGET,
    INI_REDIS: OPT_REDIS,
    INI_REDIS_BINARY: OPT_REDIS_BINARY,
    INI_REDIS_OWNED: OPT_REDIS_OWNED,
    INI_RUN: OPT_RUN,
    INI_REPORT: OPT_REPORT,
    INI_LATENCY_BUDGET: OPT_LATENCY_BUDGET,
    INI_INSTANCES: OPT_INSTANCES,
    INI_WORKLOAD: OPT_WORKLOAD,
    INI_TIMEOUT: OPT_TIMEOUT,
    INI_SCENARIOS: OPT_SCENARIOS,
}


def _parse_target(value: object, source: str) -> str | None:
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        if text in TARGET_NAMES:
            return TARGET_NAMES[text]
        module, colon, attr = text.partition(":")
        if colon and _is_dotted_name(module) and _is_dotted_name(attr):
            return text
    raise _usage_error(source, _messages.EXPECT_TARGET, value)


def _parse_redis(value: object, source: str) -> str | RedisURL:
    if not isinstance(value, str):
        raise _usage_error(source, _messages.EXPECT_REDIS, value)
    text = value.strip()
    if text in ("fake", "server"):
        return text
    cluster = _parse_redis_cluster(text, source)
    if cluster is not None:
        return cluster
    # Quoted masked: a value that does not parse may hold a password anywhere.
    shown = redact_value(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        raise _usage_error(source, _messages.EXPECT_REDIS, shown) from None
    if parts.scheme not in ("redis", "rediss") or not parts.netloc:
        raise _usage_error(source, _messages.EXPECT_REDIS, shown)
    return RedisURL(text)


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster: ``redis+cluster://`` or ``rediss+cluster://``."""
    return url.partition("://")[0].lower().endswith(CLUSTER_SCHEME_SUFFIX)


def _parse_redis_cluster(text: str, source: str) -> str | RedisURL | None:
    """``cluster``, or a ``redis+cluster://`` / ``rediss+cluster://`` URL; ``None``: neither."""
    if text == "cluster":
        return text
    if not is_cluster_url(text):
        return None
    shown = redact_value(text)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 -- raises ValueError for a malformed port
    except ValueError:
        raise _usage_error(source, _messages.EXPECT_REDIS_CLUSTER, shown) from None
    base = parts.scheme.lower().removesuffix(CLUSTER_SCHEME_SUFFIX)
    if base not in ("redis", "rediss") or not parts.hostname:
        raise _usage_error(source, _messages.EXPECT_REDIS_CLUSTER, shown)
    if parts.path.strip("/") not in ("", "0"):
        # A cluster has database 0 only: a number here is a mistake worth naming.
        raise _usage_error(source, _messages.EXPECT_REDIS_CLUSTER, shown)
    return RedisURL(text)


def _parse_redis_binary(value: object, source: str, base: Path, needed: bool) -> str | None:
    if not isinstance(value, str):
        raise _usage_error(source, _messages.EXPECT_REDIS_BINARY, value)
    text = value.strip()
    if not text:
        return None
    # Only checked when it will be used: a global ini value must not break fake runs.
    if needed:
        candidate = base / text if ("/" in text or "\\" in text) else None
        found = shutil.which(str(candidate)) if candidate is not None else shutil.which(text)
        if found is None:
            raise _usage_error(source, _messages.EXPECT_REDIS_BINARY, value)
        return found
    return text


def _parse_run(value: object, source: str) -> bool:
    if not isinstance(value, bool):
        raise _usage_error(source, _messages.EXPECT_BOOL, value)
    return value


def _parse_report(value: object, source: str, base: Path) -> Path | None:
    if not isinstance(value, str):
        raise _usage_error(source, _messages.EXPECT_REPORT, value)
    text = value.strip()
    if not text:
        return None
    path = base / text
    if path.is_dir() or text.endswith(("/", "\\")):
        raise _usage_error(source, _messages.EXPECT_REPORT, value)
    return path


def _parse_budget(value: object, source: str) -> int:
    try:
        return parse_duration(value)  # type: ignore[arg-type]  # non-str is rejected inside
    except ValueError:
        raise _usage_error(source, _messages.EXPECT_DURATION, value) from None


def _parse_instances(value: object, source: str) -> int:
    if isinstance(value, bool):
        raise _usage_error(source, _messages.EXPECT_INSTANCES, value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value)
    if number is None or not 2 <= number <= MAX_INSTANCES:
        raise _usage_error(source, _EXPECT_INSTANCES, value)
    return number


_EXPECT_INSTANCES = _messages.EXPECT_INSTANCES_BOUNDED.format(most=MAX_INSTANCES)


def _parse_workload(value: object, source: str) -> Workload:
    if not isinstance(value, str):
        raise _usage_error(source, _messages.EXPECT_WORKLOAD, value)
    try:
        return Workload.parse(value)
    except ValueError:
        raise _usage_error(source, _messages.EXPECT_WORKLOAD, value) from None


def _parse_scenarios(value: object, source: str) -> int:
    if isinstance(value, bool):
        raise _usage_error(source, _messages.EXPECT_SCENARIOS, value)
    number: int | None = None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        number = int(value)
    if number is None or number < 1:
        raise _usage_error(source, _messages.EXPECT_SCENARIOS, value)
    return number


def settings_from_config(config: pytest.Config) -> P1Settings:
    """Read and validate every setting; raise :class:`pytest.UsageError` on a bad one."""
    target, target_source, _ = _raw(config, INI_TARGET, _messages.EXPECT_TARGET)
    redis, redis_source, _ = _raw(config, INI_REDIS, _messages.EXPECT_REDIS)
    redis = _parse_redis(redis, redis_source)
    binary, binary_source, binary_base = _raw(
        config, INI_REDIS_BINARY, _messages.EXPECT_REDIS_BINARY
    )
    run, run_source, _ = _raw(config, INI_RUN, _messages.EXPECT_BOOL)
    owned, owned_source, _ = _raw(config, INI_REDIS_OWNED, _messages.EXPECT_BOOL)
    report, report_source, report_base = _raw(config, INI_REPORT, _messages.EXPECT_REPORT)
    budget, budget_source, _ = _raw(config, INI_LATENCY_BUDGET, _messages.EXPECT_DURATION)
    instances, instances_source, _ = _raw(config, INI_INSTANCES, _EXPECT_INSTANCES)
    workload, workload_source, _ = _raw(config, INI_WORKLOAD, _messages.EXPECT_WORKLOAD)
    timeout, timeout_source, _ = _raw(config, INI_TIMEOUT, _messages.EXPECT_DURATION)
    scenarios, scenarios_source, _ = _raw(config, INI_SCENARIOS, _messages.EXPECT_SCENARIOS)
    settings = P1Settings(
        target=_parse_target(target, target_source),
        redis=redis,
        redis_binary=_parse_redis_binary(
            binary, binary_source, binary_base, needed=redis in ("server", "cluster")
        ),
        run=_parse_run(run, run_source),
        report=_parse_report(report, report_source, report_base),
        latency_budget_ns=_parse_budget(budget, budget_source),
        instances=_parse_instances(instances, instances_source),
        workload=_parse_workload(workload, workload_source),
        target_source=target_source,
        timeout_ns=_parse_budget(timeout, timeout_source),
        scenarios=_parse_scenarios(scenarios, scenarios_source),
        redis_owned=_parse_run(owned, owned_source),
    )
    if settings.run and settings.target is None:
        raise pytest.UsageError(_messages.NO_TARGET)
    _warn_unused(config, settings, report_source, binary_source)
    return settings


def _warn_unused(
    config: pytest.Config, settings: P1Settings, report_source: str, binary_source: str
) -> None:
    """Warn about an option given on the command line for a run that does not use it.

    Only command-line values: an ini file may well set ``p1_report`` or
    ``p1_redis_binary`` for the runs that use them and serve the others too.
    """
    unused = []
    if settings.report is not None and not settings.run and report_source == OPT_REPORT:
        unused.append(_messages.UNUSED_REPORT_WITHOUT_RUN.format(option=OPT_REPORT, run=OPT_RUN))
    if (
        settings.redis_binary is not None
        and settings.redis_mode not in ("server", "cluster")
        and binary_source == OPT_REDIS_BINARY
    ):
        unused.append(
            _messages.UNUSED_REDIS_BINARY_WITHOUT_SERVER.format(
                option=OPT_REDIS_BINARY, redis=OPT_REDIS
            )
        )
    for text in unused:
        config.issue_config_time_warning(pytest.PytestConfigWarning(text), stacklevel=2)


def redis_for_report(settings: P1Settings) -> str:
    """The Redis setting as shown to users: passwords in URLs redacted."""
    if settings.redis_mode in ("cluster", "cluster-url"):
        return cluster_for_report(settings)
    if settings.redis_mode == "url":
        return str(settings.redis) + (_messages.HEADER_REDIS_OWNED if settings.redis_owned else "")
    if settings.redis_mode == "server" and settings.redis_binary is not None:
        return f"server ({settings.redis_binary})"
    return str(settings.redis)


def cluster_for_report(settings: P1Settings, nodes: int | None = None) -> str:
    """A cluster setting as shown to users: private (its shape) or a URL (redacted),
    with its node count when known (``nodes``, from :func:`~._redis.source.probe_cluster`)."""
    if settings.redis_mode == "cluster":
        masters, replicas = CLUSTER_SHAPE
        shown = _messages.HEADER_REDIS_CLUSTER_PRIVATE.format(
            nodes=masters * (1 + replicas), masters=masters, replicas=masters * replicas
        )
        if settings.redis_binary is not None:
            shown += f" ({settings.redis_binary})"
        return shown
    shown = _messages.HEADER_REDIS_CLUSTER_URL.format(
        url=settings.redis,
        nodes=_messages.HEADER_REDIS_CLUSTER_NODES.format(nodes=nodes) if nodes else "",
    )
    return shown + (_messages.HEADER_REDIS_CLUSTER_OWNED if settings.redis_owned else "")


def extra_for_report(extra: Mapping[str, object], settings: P1Settings) -> dict[str, str]:
    """``P1Target.extra`` as shown to users: a URL's password and the run's secrets masked."""
    shown = {}
    for key, value in extra.items():
        text = redact_text(str(value))
        for secret in settings.secrets:
            text = text.replace(secret, "***")
        shown[str(key)] = text
    return shown


def extra_line(extra: Mapping[str, object], settings: P1Settings) -> str:
    """``P1Target.extra`` as one line of the pytest header (passwords redacted)."""
    facts = extra_for_report(extra, settings)
    return _messages.HEADER_EXTRA.format(
        facts=", ".join(f"{key}={value}" for key, value in facts.items())
    )


def header_line(settings: P1Settings) -> str:
    """The effective settings as one line of the pytest header (credentials redacted)."""
    details = ""
    if settings.run:
        details = (
            f", p1 run: latency budget={format_duration(settings.latency_budget_ns)}, "
            f"instances={settings.instances}, timeout={format_duration(settings.timeout_ns)}, "
            f"scenarios={settings.scenarios}"
        )
        if settings.report is not None:
            details += f", report={settings.report}"
    return _messages.HEADER.format(
        target=settings.target or _messages.HEADER_NO_TARGET,
        redis=redis_for_report(settings),
        details=details,
    )
