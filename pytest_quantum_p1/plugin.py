"""pytest hooks and fixture declarations of ``-p quantum_p1`` (logic lives elsewhere).

Loading this module must stay cheap: it imports pytest and the option
definitions only. The target, redis, fakeredis and hypothesis are imported by
the fixtures that need them, when a test first asks for one.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

from pytest_quantum_p1 import _messages, _options

if TYPE_CHECKING:
    from redis.asyncio import Redis

    from pytest_quantum_p1._clock import VirtualClock
    from pytest_quantum_p1._events import EventRecorder
    from pytest_quantum_p1._harness import PolicyCluster, PolicyClusterFactory
    from pytest_quantum_p1._latency import LatencyRecorder
    from pytest_quantum_p1._redis.clients import TrackedClients
    from pytest_quantum_p1._redis.cluster import LocalRedisCluster
    from pytest_quantum_p1._redis.namespace import Namespace
    from pytest_quantum_p1._redis.server import RedisServer
    from pytest_quantum_p1._redis.source import ClusterProbe, RedisFactory, RedisSource
    from pytest_quantum_p1._target import P1Target
    from pytest_quantum_p1._v2 import V2Guard, V2ScanResult

#: The ``publishes`` expectations of a test and the recorder that checks them.
_PUBLISHES_KEY = pytest.StashKey[tuple["EventRecorder", list[tuple[str, dict[str, Any]]]]]()
#: The guard of a ``forbid_v2`` test.
_FORBID_V2_KEY = pytest.StashKey["V2Guard"]()
_Report = TypeVar("_Report", pytest.TestReport, pytest.CollectReport)
_ACCEPTANCE_HOOKS_NAME = "quantum_p1.acceptance"
#: What the node of a ``redis+cluster://`` URL said about its cluster, for the header.
_CLUSTER_PROBE_KEY = pytest.StashKey["ClusterProbe"]()


# -- hooks ----------------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    _options.register_options(parser)


def pytest_configure(config: pytest.Config) -> None:
    settings = config.stash[_options.SETTINGS_KEY] = _options.settings_from_config(config)
    _check_redis_cluster(config, settings)
    for line in _options.MARKERS:
        config.addinivalue_line("markers", line)
    if settings.secrets:
        # An INTERNALERROR prints frame locals too, and its hook gets no config.
        from pytest_quantum_p1._redis.scrub import InternalErrorMask

        config.pluginmanager.register(InternalErrorMask(settings.secrets), "quantum_p1.mask")
    if settings.run:
        # The acceptance run's hooks exist only in a --p1 run.
        from pytest_quantum_p1._acceptance import AcceptanceHooks

        config.pluginmanager.register(AcceptanceHooks(config), _ACCEPTANCE_HOOKS_NAME)


def pytest_report_header(config: pytest.Config) -> list[str]:
    settings = config.stash[_options.SETTINGS_KEY]
    lines = [_options.header_line(settings)]
    probe: ClusterProbe | None = config.stash.get(_CLUSTER_PROBE_KEY, None)
    if probe is not None:
        lines.append(
            _messages.HEADER_REDIS_CLUSTER_SEEN.format(nodes=probe.nodes, masters=probe.masters)
        )
    if settings.run and settings.target is not None:
        # A --p1 run loads the target anyway; its facts (P1Target.extra) go in the header.
        from pytest_quantum_p1._target import TargetError, load_configured_target

        try:
            target = load_configured_target(config, settings.target, settings.target_source)
        except TargetError:
            return lines  # the collection reports it, as a usage error
        if target.extra:
            lines.append(_options.extra_line(target.extra, settings))
    return lines


def _check_redis_cluster(config: pytest.Config, settings: _options.P1Settings) -> None:
    """Refuse a Redis setting that names the wrong kind: a plain URL at a cluster node,
    a cluster URL at a standalone server, or cluster mode on a redis-py without cluster
    pub/sub. An unreachable server passes: the checks that use it say why."""
    mode = settings.redis_mode
    if mode not in ("url", "cluster", "cluster-url"):
        return
    from pytest_quantum_p1._redis.source import RedisTooOld, probe_cluster, require_cluster_pubsub

    if mode != "url":
        try:
            require_cluster_pubsub()
        except RedisTooOld as exc:
            raise pytest.UsageError(f"{_options.OPT_REDIS}={mode}: {exc}") from None
    if mode == "cluster":
        return
    import redis

    from pytest_quantum_p1._redis.url import RedisURL

    url = settings.redis
    assert isinstance(url, RedisURL)  # a URL mode
    try:
        probe = probe_cluster(url.reveal())
    except redis.RedisError:
        return
    shown = str(url)
    scheme, _, rest = shown.partition("://")
    if mode == "url" and probe is not None:
        raise pytest.UsageError(
            _messages.REDIS_URL_IS_CLUSTER_NODE.format(
                source=_options.OPT_REDIS,
                url=shown,
                option=_options.OPT_REDIS,
                suggestion=f"{scheme}{_options.CLUSTER_SCHEME_SUFFIX}://{rest}",
            )
        )
    if mode == "cluster-url" and probe is None:
        raise pytest.UsageError(
            _messages.REDIS_CLUSTER_URL_NOT_CLUSTER.format(
                source=_options.OPT_REDIS,
                url=shown,
                option=_options.OPT_REDIS,
                suggestion=f"{scheme.removesuffix(_options.CLUSTER_SCHEME_SUFFIX)}://{rest}",
            )
        )
    if probe is not None:
        config.stash[_CLUSTER_PROBE_KEY] = probe


@pytest.hookimpl(wrapper=True, tryfirst=True)  # outermost: after every other hook added to it
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    # A Redis password must reach no output: every report is masked before
    # the terminal, JUnit XML, xdist or the acceptance reports read it.
    report = yield
    return _masked(item.config, report)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    return _masked(collector.config, report)


def _masked(config: pytest.Config, report: _Report) -> _Report:
    settings = config.stash.get(_options.SETTINGS_KEY, None)
    if settings is None or not settings.secrets:
        return report
    from pytest_quantum_p1._redis.scrub import scrub_report

    scrub_report(report, settings.secrets)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    # Past the yield only if the test itself passed: a failing test keeps its own error.
    yield
    verdicts = []
    pending = item.stash.get(_PUBLISHES_KEY, None)
    if pending is not None:
        from pytest_quantum_p1._events import publishes_failures

        verdicts.append(publishes_failures(*pending))
    guard = item.stash.get(_FORBID_V2_KEY, None)
    if guard is not None and guard.violations:
        verdicts.append(guard.format_violations())
    failures = [verdict for verdict in verdicts if verdict]
    if failures:
        pytest.fail("\n\n".join(failures), pytrace=False)


# -- target, settings, events, latency -------------------------------------------------


@pytest.fixture(scope="session")
def p1_settings(pytestconfig: pytest.Config) -> _options.P1Settings:
    """The effective quantum-p1 settings of this run (a frozen ``P1Settings``)."""
    return pytestconfig.stash[_options.SETTINGS_KEY]


@pytest.fixture(scope="session")
def p1_target(pytestconfig: pytest.Config) -> P1Target:
    """The configured ``P1Target`` (``--p1-target`` / ini ``p1_target``), imported on first use.

    A target that cannot be loaded is an error naming the setting to fix.
    """
    from pytest_quantum_p1._target import TargetError, load_configured_target

    settings = pytestconfig.stash[_options.SETTINGS_KEY]
    if settings.target is None:
        pytest.fail(_messages.NO_TARGET, pytrace=False)
    try:
        return load_configured_target(pytestconfig, settings.target, settings.target_source)
    except TargetError as exc:
        problem = str(exc)
    # Outside the ``except``: the report shows our message, not a chained traceback.
    pytest.fail(problem, pytrace=False)


@pytest.fixture
def p1_events(p1_target: P1Target) -> Iterator[EventRecorder]:
    """Records every event published on the target's bus during the test.

    ``assert_published(name, **fields)`` (subset match; ``ANY`` for any value)
    returns the event; ``assert_not_published``, ``assert_order(*names,
    exact=False)``, ``wait_for(name, timeout=1.0, **fields)`` and
    ``await wait_for_async(...)``; ``events``, ``names``, ``clear()``; and
    ``with p1_events.capture() as events:`` for a fresh recording per
    Hypothesis example. Unknown event names raise ``UnknownEventName``.
    """
    from pytest_quantum_p1._events import EventRecorder

    with EventRecorder(p1_target.bus()) as recorder:
        yield recorder


@pytest.fixture
def p1_latency(request: pytest.FixtureRequest, p1_settings: _options.P1Settings) -> LatencyRecorder:
    """Times a sync or async callable call by call after warm-up; percentiles over single calls.

    ``p1_latency(fn, label=None, budget=None, percentile="p99", warmup=100,
    calls=10_000, runner=None)`` returns ``LatencyStats`` (``p50_ns``, ``p90_ns``,
    ``p99_ns``, ``p999_ns``, ``max_ns``, ``mean_ns``, ``timer_ns`` (the timer's own
    cost, in every sample); ``assert_below(budget)``) and records
    ``p1.latency.<label>.<figure>_ns`` in the test's user properties. With
    pytest-benchmark active, each measurement is also one of its benchmarks,
    ``<test name>[<label>]``, one round per call: in ``--benchmark-json``,
    ``--benchmark-autosave`` and ``--benchmark-compare(-fail)``. ``await
    p1_latency.measure_async(fn, ...)`` inside a running event loop.
    ``p1_latency.default_budget_ns`` is ``--p1-latency-budget``.
    """
    from pytest_quantum_p1._latency import (
        LatencyRecorder,
        LatencyStats,
        benchmark_entries,
        benchmark_name,
    )

    node = request.node
    entries = benchmark_entries(request.config)
    if entries is None:
        return LatencyRecorder(node.user_properties, p1_settings.latency_budget_ns)

    def add_entry(label: str, stats: LatencyStats) -> None:
        entries.add(
            name=benchmark_name(node.name, label),
            fullname=benchmark_name(node.nodeid, label),
            group=_messages.BENCHMARK_GROUP_LATENCY,
            stats=stats,
        )

    return LatencyRecorder(node.user_properties, p1_settings.latency_budget_ns, add_entry)


@pytest.fixture(autouse=True)
def _p1_markers(request: pytest.FixtureRequest) -> None:
    # Marker misuse fails the test before it runs, with one message and no
    # chained traceback (hence the ``problem`` variable instead of failing in
    # ``except``); the verdicts come in ``pytest_runtest_call``.
    node = request.node
    publishes = list(node.iter_markers("publishes"))
    forbid_v2 = list(node.iter_markers("forbid_v2"))
    problem: str | None = None
    if publishes:
        problem = _arm_publishes(request, publishes)
    if forbid_v2 and problem is None:
        misused = next((m for m in forbid_v2 if m.args or m.kwargs), None)
        if misused is not None:
            problem = _messages.MARKER_FORBID_V2_MISUSE.format(
                nodeid=node.nodeid, args=_marker_args(misused)
            )
        else:
            node.stash[_FORBID_V2_KEY] = request.getfixturevalue("v2_guard")
    if problem is not None:
        pytest.fail(problem, pytrace=False)


def _marker_args(marker: pytest.Mark) -> str:
    return ", ".join([*map(repr, marker.args), *(f"{k}={v!r}" for k, v in marker.kwargs.items())])


def _arm_publishes(request: pytest.FixtureRequest, markers: list[pytest.Mark]) -> str | None:
    """Validate the ``publishes`` markers and start recording; the problem, if any."""
    from pytest_quantum_p1._events import UnknownEventName, publishes_signature

    expectations = []
    for marker in markers:
        try:
            expectations.append(publishes_signature(*marker.args, **marker.kwargs))
        except TypeError:
            return _messages.MARKER_PUBLISHES_MISUSE.format(
                nodeid=request.node.nodeid, args=_marker_args(marker)
            )
    recorder: EventRecorder = request.getfixturevalue("p1_events")
    for name, _fields in expectations:
        try:
            recorder.check_name(name)
        except UnknownEventName as exc:
            return _messages.MARKER_PUBLISHES_PREFIX + str(exc)
    request.node.stash[_PUBLISHES_KEY] = (recorder, expectations)
    return None


# -- Redis ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def _p1_redis_server(p1_settings: _options.P1Settings) -> Iterator[RedisServer]:
    from pytest_quantum_p1._redis.server import require_redis_server

    with require_redis_server(
        p1_settings.redis_binary, why=_messages.REDIS_SERVER_UNAVAILABLE
    ) as server:
        yield server


@pytest.fixture(scope="session")
def _p1_redis_cluster(p1_settings: _options.P1Settings) -> Iterator[LocalRedisCluster]:
    from pytest_quantum_p1._redis.cluster import require_redis_cluster

    masters, replicas = _options.CLUSTER_SHAPE
    with require_redis_cluster(
        p1_settings.redis_binary,
        masters=masters,
        replicas_per_master=replicas,
        why=_messages.REDIS_CLUSTER_UNAVAILABLE,
    ) as cluster:
        yield cluster


@pytest.fixture(scope="session")
def _p1_redis_namespace(p1_settings: _options.P1Settings) -> Iterator[Namespace]:
    # The run's names on a server it does not own; every key holding its
    # token is removed at the end of the session, also after a failure or a
    # Ctrl-C (pytest tears session fixtures down on its way out).
    from pytest_quantum_p1._redis.namespace import Namespace
    from pytest_quantum_p1._redis.source import RedisSource

    if p1_settings.redis_mode == "cluster-url":
        source = RedisSource.cluster(p1_settings.redis)
    else:
        source = RedisSource.external(p1_settings.redis)
    namespace = Namespace.claim(source)
    try:
        yield namespace
    finally:
        namespace.retire(source)


@pytest.fixture
def _p1_redis_source(
    request: pytest.FixtureRequest, p1_settings: _options.P1Settings
) -> RedisSource:
    from pytest_quantum_p1._redis.source import RedisSource

    mode = p1_settings.redis_mode
    if mode == "fake":
        return RedisSource.fake()  # one server per test: isolation without flushing
    if mode == "server":
        server: RedisServer = request.getfixturevalue("_p1_redis_server")
        source = RedisSource.server(server.url)
        source.flush()  # the server is private to this session: emptying it is safe
        return source
    if mode == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("_p1_redis_cluster")
        # A node an earlier test took down comes back: each test gets a whole cluster.
        cluster.heal(_options.CLUSTER_SHAPE[0])
        source = RedisSource.cluster(cluster.startup_url, owned=True)
        source.flush()
        return source
    # Someone else's server: never flushed unless its database was declared ours;
    # the harness's names live in a namespace of this test's own either way.
    namespace: Namespace = request.getfixturevalue("_p1_redis_namespace")
    if mode == "cluster-url":
        source = RedisSource.cluster(
            p1_settings.redis, owned=p1_settings.redis_owned, namespace=namespace.child()
        )
    else:
        source = RedisSource.external(
            p1_settings.redis, owned=p1_settings.redis_owned, namespace=namespace.child()
        )
    if source.owned:
        source.flush()
    return source


@pytest.fixture
def _p1_redis_clients(_p1_redis_source: RedisSource) -> Iterator[TrackedClients]:
    from pytest_quantum_p1._redis.clients import LeftOpen, TrackedClients

    clients = TrackedClients(_p1_redis_source)
    yield clients
    try:
        clients.close()
    except LeftOpen as exc:
        problem = str(exc)
    else:
        return
    # The test's own doing, said in one message: no traceback of the harness.
    pytest.fail(problem, pytrace=False)


@pytest.fixture
def p1_redis(_p1_redis_clients: TrackedClients) -> Redis:
    """A ``redis.asyncio`` client on the selected Redis (``--p1-redis``), closed after the test.

    ``fake``: a fakeredis server of this test's own. ``server``: a private
    redis-server shared by the session and emptied before each test. A URL:
    that server as it is, shared with everything else on it and never flushed
    (unless ``--p1-redis-owned`` declares its database the harness's: then
    emptied before each test); name your keys with ``p1_redis_namespace``,
    and they are removed at the end of the run. Use the client on one event
    loop at a time; ``p1_redis_factory()`` makes more clients on the same Redis.
    """
    return _p1_redis_clients()


@pytest.fixture
def p1_redis_namespace(_p1_redis_source: RedisSource) -> str:
    """A key prefix of this test's own, ``p1-<token>-t<n>-``, for keys on ``p1_redis``.

    On a URL (``--p1-redis=redis://...``) no key on the server contained the
    token when the run began, and every key containing it is removed at the
    end of the run (``SCAN`` + ``UNLINK``), also after a failure or Ctrl-C.
    """
    if _p1_redis_source.namespace:
        return _p1_redis_source.namespace
    import secrets

    from pytest_quantum_p1._redis.namespace import Namespace

    # fake and server are emptied for every test: any fresh prefix is this test's alone.
    return Namespace(secrets.token_hex(4)).child()


@pytest.fixture
def p1_redis_factory(_p1_redis_clients: TrackedClients) -> RedisFactory:
    """Makes new ``redis.asyncio`` clients on the same Redis as ``p1_redis`` (closed after the test).

    ``p1_redis_factory(decode_responses=True)``: keyword arguments go to the client.
    """
    return _p1_redis_clients


# -- clock, cluster, v2 ---------------------------------------------------------------


@pytest.fixture
def virtual_clock(pytestconfig: pytest.Config) -> VirtualClock:
    """A monotonic clock that only moves with ``advance(seconds)``: drives TTLs without sleeping.

    Pass it to stores as their ``clock``; ``policy_cluster`` does. When the
    configured target declares ``real_time=True`` (its store keeps time itself),
    it is a ``RealClock`` instead: the machine's monotonic time, whose
    ``advance`` sleeps. Without a configured target it never loads one.
    """
    from pytest_quantum_p1._clock import RealClock, VirtualClock

    settings = pytestconfig.stash[_options.SETTINGS_KEY]
    if settings.target is not None:
        from pytest_quantum_p1._target import TargetError, load_configured_target

        try:
            target = load_configured_target(pytestconfig, settings.target, settings.target_source)
        except TargetError:
            pass  # said by p1_target, where a test needs the target; a clock does not
        else:
            if target.real_time:
                return RealClock()
    return VirtualClock()


@pytest.fixture
def policy_cluster(
    p1_target: P1Target,
    p1_settings: _options.P1Settings,
    virtual_clock: VirtualClock,
    _p1_redis_source: RedisSource,
) -> Iterator[PolicyClusterFactory]:
    """Builds N policy-store instances of the target sharing one Redis; closed after the test.

    ``policy_cluster(instances=None, *, timeout=10.0, processes=False)`` (default
    ``--p1-instances``) returns a ``PolicyCluster`` over the target's
    ``store_factory``, the selected Redis and ``virtual_clock``: ``update(i, name,
    policy)``, ``read(i, name)``, ``read_all(name)``, ``settle()``,
    ``assert_converged(name, value)``, ``stats()``; each waiting method also as
    ``await ..._async()``. ``processes=True`` runs each instance in an OS process
    of its own, importing the target by its name (``--p1-target``); it needs a
    real Redis (``--p1-redis=server`` or a URL).
    """
    from pytest_quantum_p1._harness import PolicyCluster

    opened: list[PolicyCluster] = []

    def make(
        instances: int | None = None, *, timeout: float = 10.0, processes: bool = False
    ) -> PolicyCluster:
        cluster = PolicyCluster.open(
            # Child processes import the target by name (set: p1_target loaded); objects stay here.
            (p1_settings.target or "") if processes else p1_target.store_factory,
            _p1_redis_source,
            instances=p1_settings.instances if instances is None else instances,
            clock=virtual_clock,
            channel=p1_target.invalidation_channel,
            timeout=timeout,
            processes=processes,
        )
        opened.append(cluster)
        return cluster

    yield make
    for cluster in opened:
        cluster.close()


@pytest.fixture(scope="session")
def v2_usage(p1_target: P1Target) -> V2ScanResult:
    """The static scan of the target's sources for v2 imports outside the bridge (once per session).

    ``.ok``, ``.violations`` (file, line, importer, module, how), ``.unresolved``
    dynamic imports, ``.errors``; ``_v2.format_violations(result, rules)`` words it.
    """
    from pytest_quantum_p1._v2 import scan_target_rules

    return scan_target_rules(p1_target.v2)


@pytest.fixture
def v2_guard(p1_target: P1Target) -> Iterator[V2Guard]:
    """Records every construction of the target's v2 engine class during the test, with its caller.

    ``.constructions``, ``.violations`` (outside the bridge modules),
    ``.format_violations()``. ``@pytest.mark.forbid_v2`` fails the test on a violation.
    """
    from pytest_quantum_p1._target import TargetError
    from pytest_quantum_p1._v2 import V2Guard

    rules = p1_target.v2
    guard = V2Guard.from_rules(rules)
    try:
        guard.start()
    except (TargetError, ImportError, ValueError, TypeError) as exc:
        problem = _messages.V2_ENGINE_UNAVAILABLE.format(spec=rules.engine_class, error=exc)
    else:
        try:
            yield guard
        finally:
            guard.stop()
        return
    pytest.fail(problem, pytrace=False)
