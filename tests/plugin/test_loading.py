"""Loading and configuring ``-p quantum_p1``: options, ini twins, header, usage errors."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap

import pytest

from pytest_quantum_p1 import REFERENCE_TARGET, _messages, _options, _units

ALL_OPTIONS = (
    _options.OPT_TARGET,
    _options.OPT_REDIS,
    _options.OPT_REDIS_BINARY,
    _options.OPT_RUN,
    _options.OPT_REPORT,
    _options.OPT_LATENCY_BUDGET,
    _options.OPT_INSTANCES,
)
ALL_INI = (
    _options.INI_TARGET,
    _options.INI_REDIS,
    _options.INI_REDIS_BINARY,
    _options.INI_RUN,
    _options.INI_REPORT,
    _options.INI_LATENCY_BUDGET,
    _options.INI_INSTANCES,
)
#: The fixtures every user can see with ``pytest --fixtures``.
PUBLIC_FIXTURES = (
    "p1_settings",
    "p1_target",
    "p1_events",
    "p1_latency",
    "p1_redis",
    "p1_redis_factory",
    "virtual_clock",
    "policy_cluster",
    "v2_usage",
    "v2_guard",
)

#: Modules whose import would make loading the plugin slow or have side effects.
HEAVY_MODULES = ("redis", "fakeredis", "hypothesis", "reference_impl", "asyncio")


def _header(
    target: str = _messages.HEADER_NO_TARGET, redis: str = "fake", details: str = ""
) -> str:
    return _messages.HEADER.format(target=target, redis=redis, details=details)


#: What --p1-instances / p1_instances takes, as the usage error says it.
EXPECT_INSTANCES = _messages.EXPECT_INSTANCES_BOUNDED.format(most=_options.MAX_INSTANCES)


def _bad(source: str, expected: str, value: object) -> str:
    return "ERROR: " + _messages.USAGE_BAD_VALUE.format(
        source=source, expected=expected, value=value
    )


# -- --help, markers, fixtures ------------------------------------------------------


def test_help_shows_the_group_every_option_and_ini_key(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "quantum_p1", "--help")
    assert result.ret == pytest.ExitCode.OK
    result.stdout.fnmatch_lines(["quantum-p1: prove the P1 maintenance promises:"])
    out = result.stdout.str()
    group = out[out.index("quantum-p1: prove the P1 maintenance promises:") :]
    for option in ALL_OPTIONS:
        assert f"  {option}" in group, option
    for ini in ALL_INI:
        result.stdout.fnmatch_lines([f"  {ini} (*):*"])
        assert f"quantum-p1: same as --{ini.replace('_', '-')}" in out, ini


def test_help_of_the_report_option_names_the_json_and_the_html_beside_it(
    pytester: pytest.Pytester,
) -> None:
    result = pytester.runpytest("-p", "quantum_p1", "--help")
    help_text = " ".join(result.stdout.str().split())  # argparse wraps lines
    start = help_text.index(f"{_options.OPT_REPORT}=PATH")
    report_help = help_text[start : help_text.index(f"ini: {_options.INI_REPORT}", start)]
    assert "JSON" in report_help
    assert "HTML" in report_help


def test_markers_are_registered_with_their_signature(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "quantum_p1", "--markers")
    result.stdout.fnmatch_lines(
        ["@pytest.mark.publishes(name, **fields): *", "@pytest.mark.forbid_v2: *"]
    )


def test_fixtures_lists_every_public_fixture_with_its_docstring(
    pytester: pytest.Pytester,
) -> None:
    from pytest_quantum_p1 import plugin

    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1", "--fixtures")
    out = result.stdout.str()
    for name in PUBLIC_FIXTURES:
        doc = getattr(plugin, name).__doc__
        assert doc, f"fixture {name} has no docstring"
        first_line = doc.strip().splitlines()[0]
        result.stdout.fnmatch_lines([f"{name}*-- *plugin.py:*", f"    {first_line}"])
        assert name in out


# -- header -------------------------------------------------------------------------


def test_header_shows_the_default_settings(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([_header()])


def test_header_redacts_the_password_of_a_redis_url(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    # Nothing connects at start-up, so an unreachable host is fine here.
    url = "redis://ops:hunter2@redis.invalid:6390/3"
    result = pytester.runpytest("-p", "quantum_p1", f"--p1-redis={url}")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([_header(redis="redis://ops:***@redis.invalid:6390/3")])
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


def test_ini_settings_apply_and_the_command_line_wins(pytester: pytest.Pytester) -> None:
    pytester.makeini(
        """
        [pytest]
        p1_target = my_backend.harness:TARGET
        p1_redis = rediss://cache.invalid:6380/0
        """
    )
    pytester.makepyfile("def test_nothing(): pass")
    from_ini = pytester.runpytest("-p", "quantum_p1")
    from_ini.stdout.fnmatch_lines(
        [_header(target="my_backend.harness:TARGET", redis="rediss://cache.invalid:6380/0")]
    )
    from_cli = pytester.runpytest("-p", "quantum_p1", "--p1-target=other.mod:T", "--p1-redis=fake")
    from_cli.stdout.fnmatch_lines([_header(target="other.mod:T")])


def test_header_of_an_acceptance_run_names_its_budget_and_instances(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        "--co",
        "--p1",
        "--p1-target=reference",
        "--p1-latency-budget=250us",
        "--p1-instances=3",
    )
    result.stdout.fnmatch_lines(
        [
            _header(
                target=REFERENCE_TARGET,
                details=", p1 run: latency budget=250 us, instances=3, timeout=30 s, scenarios=200",
            )
        ]
    )


def test_settings_fixture_holds_the_validated_values(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        def test_settings(p1_settings):
            assert p1_settings.redis_mode == "fake"
            assert p1_settings.latency_budget_ns == 500
            assert p1_settings.instances == 7
            assert p1_settings.report.name == "out.json"
        """
    )
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        "--p1-latency-budget=500ns",
        "--p1-report=out.json",
        "-o",
        "p1_instances=7",
    )
    result.assert_outcomes(passed=1)


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [("1ms", 1_000_000), ("250us", 250_000), ("0.5s", 500_000_000), ("500ns", 500)],
)
def test_durations_parse(text: str, nanoseconds: int) -> None:
    assert _units.parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    "text", ["1", "0ms", "-1ms", "1e3ms", "inf s", "ms", "1 m", "1.2.3ms", "1mss", ""]
)
def test_bad_durations_are_rejected_naming_the_accepted_forms(text: str) -> None:
    with pytest.raises(ValueError, match=re.escape(_messages.EXPECT_DURATION)):
        _units.parse_duration(text)


# -- usage errors ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["--p1-redis=bogus"],
            _bad(_options.OPT_REDIS, _messages.EXPECT_REDIS, "bogus"),
        ),
        (
            ["--p1-redis=http://localhost:6379"],
            _bad(_options.OPT_REDIS, _messages.EXPECT_REDIS, "http://localhost:6379"),
        ),
        (
            ["--p1-redis=redis://localhost:notaport"],
            _bad(_options.OPT_REDIS, _messages.EXPECT_REDIS, "redis://localhost:notaport"),
        ),
        (
            ["--p1-target=no_colon_here"],
            _bad(_options.OPT_TARGET, _messages.EXPECT_TARGET, "no_colon_here"),
        ),
        (
            ["--p1-latency-budget=1"],
            _bad(_options.OPT_LATENCY_BUDGET, _messages.EXPECT_DURATION, "1"),
        ),
        (
            ["--p1-latency-budget=0ms"],
            _bad(_options.OPT_LATENCY_BUDGET, _messages.EXPECT_DURATION, "0ms"),
        ),
        (
            ["--p1-instances=1"],
            _bad(_options.OPT_INSTANCES, EXPECT_INSTANCES, "1"),
        ),
        (
            ["--p1-instances=four"],
            _bad(_options.OPT_INSTANCES, EXPECT_INSTANCES, "four"),
        ),
        (
            [f"--p1-instances={_options.MAX_INSTANCES + 1}"],
            _bad(_options.OPT_INSTANCES, EXPECT_INSTANCES, str(_options.MAX_INSTANCES + 1)),
        ),
        (
            ["--p1-instances=1000"],
            _bad(_options.OPT_INSTANCES, EXPECT_INSTANCES, "1000"),
        ),
        (
            ["--p1-redis=server", "--p1-redis-binary=/nonexistent/redis-server"],
            _bad(
                _options.OPT_REDIS_BINARY,
                _messages.EXPECT_REDIS_BINARY,
                "/nonexistent/redis-server",
            ),
        ),
        (
            ["--p1-report=."],
            _bad(_options.OPT_REPORT, _messages.EXPECT_REPORT, "."),
        ),
    ],
    ids=lambda value: value[0] if isinstance(value, list) else "",
)
def test_bad_option_is_a_usage_error_naming_the_valid_values(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert message in result.stderr.lines


@pytest.mark.parametrize(
    ("ini", "message"),
    [
        (
            "p1_redis = bogus",
            _bad("p1_redis (ini)", _messages.EXPECT_REDIS, "bogus"),
        ),
        (
            "p1_target = nope",
            _bad("p1_target (ini)", _messages.EXPECT_TARGET, "nope"),
        ),
        (
            "p1_latency_budget = fast",
            _bad("p1_latency_budget (ini)", _messages.EXPECT_DURATION, "fast"),
        ),
        (
            "p1_instances = 0",
            _bad("p1_instances (ini)", EXPECT_INSTANCES, 0),
        ),
        (
            "p1_instances = 65",
            _bad("p1_instances (ini)", EXPECT_INSTANCES, 65),
        ),
    ],
    ids=lambda value: value.split(" =")[0] if " = " in value else "",
)
def test_bad_ini_value_is_a_usage_error_naming_the_valid_values(
    pytester: pytest.Pytester, ini: str, message: str
) -> None:
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message.replace("[", "[[]")])


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        (_options.INI_RUN, "maybe", _messages.EXPECT_BOOL),
        (_options.INI_REDIS_OWNED, "sometimes", _messages.EXPECT_BOOL),
        (_options.INI_INSTANCES, "four", EXPECT_INSTANCES),
        (_options.INI_SCENARIOS, "lots", _messages.EXPECT_SCENARIOS),
    ],
    ids=lambda value: value if isinstance(value, str) and value.startswith("p1") else None,
)
def test_an_ini_value_pytest_itself_cannot_read_is_a_usage_error_naming_key_and_valid_values(
    pytester: pytest.Pytester, key: str, value: str, expected: str
) -> None:
    # pytest coerces bool and int ini values itself, and its own error names neither
    # the key nor what it takes (pytest 9.2: "ERROR: invalid truth value 'maybe'").
    # The plugin's message names both, whatever pytest's wording; the value is quoted.
    pytester.makeini(f"[pytest]\n{key} = {value}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    (line,) = [line for line in result.stderr.lines if line.startswith("ERROR: ")]
    assert line.startswith(f"ERROR: {key} (ini): expected {expected} (")
    assert repr(value) in line or value in line


def test_redis_binary_is_only_checked_when_a_server_is_wanted(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np1_redis_binary = /nonexistent/redis-server\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1")
    result.assert_outcomes(passed=1)


# -- the target is loaded lazily ------------------------------------------------------


def test_a_broken_target_does_not_matter_until_a_fixture_needs_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(
        """
        def test_plain(): pass
        def test_needs_target(p1_target): pass
        """
    )
    result = pytester.runpytest("-p", "quantum_p1", "--p1-target=no_such_backend.harness:TARGET")
    result.assert_outcomes(passed=1, errors=1)
    message = _messages.TARGET_LOAD_FAILED.format(
        spec="no_such_backend.harness:TARGET",
        source=_options.OPT_TARGET,
        error=_messages.SPEC_NOT_IMPORTABLE.format(
            module="no_such_backend.harness", error="No module named 'no_such_backend'"
        ),
    )
    result.stdout.fnmatch_lines(message.splitlines())


def test_a_target_of_the_wrong_type_is_a_clear_error(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(not_a_target="TARGET = 42\n")
    pytester.syspathinsert()
    pytester.makepyfile(test_it="def test_needs_target(p1_events): pass\n")
    pytester.makeini("[pytest]\np1_target = not_a_target:TARGET\n")
    result = pytester.runpytest("-p", "quantum_p1", "test_it.py")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(
        [
            "quantum-p1: cannot load the target 'not_a_target:TARGET' (from p1_target (ini)): "
            "not_a_target:TARGET is a int, not a pytest_quantum_p1.P1Target",
            "Name a module attribute holding a pytest_quantum_p1.P1Target*",
        ]
    )


_NEEDS_THE_TARGET = """
from pytest_quantum_p1 import P1Target

def test_target(p1_target):
    assert isinstance(p1_target, P1Target)
    assert p1_target.name == "reference_impl"
"""


def test_there_is_no_default_target_a_fixture_that_needs_one_says_how_to_name_it(
    pytester: pytest.Pytester,
) -> None:
    pytester.makepyfile(_NEEDS_THE_TARGET)
    result = pytester.runpytest("-p", "quantum_p1")
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*" + _messages.NO_TARGET.splitlines()[0]])
    assert "reference_impl" not in result.stdout.str()


def test_the_acceptance_run_without_a_target_is_a_usage_error(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("-p", "quantum_p1", "--p1")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + _messages.NO_TARGET.splitlines()[0]])
    assert "[PASS" not in result.stdout.str()


@pytest.mark.parametrize(
    "how", [("--p1-target=reference",), ("--p1-target", REFERENCE_TARGET)], ids=["short", "spec"]
)
def test_the_bundled_example_is_reached_by_its_short_name_or_its_spec(
    pytester: pytest.Pytester, how: tuple[str, ...]
) -> None:
    pytester.makepyfile(_NEEDS_THE_TARGET)
    result = pytester.runpytest("-p", "quantum_p1", *how)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([_header(target=REFERENCE_TARGET)])


def test_the_ini_names_the_target_by_its_short_name(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\np1_target = reference\n")
    pytester.makepyfile(_NEEDS_THE_TARGET)
    pytester.runpytest("-p", "quantum_p1").assert_outcomes(passed=1)


# -- loading, with and without autoload; cheap imports ---------------------------------

_USES_THE_PLUGIN = """
def test_uses_a_fixture(p1_settings):
    assert p1_settings.redis == "fake"
"""


def test_loads_with_autoload_disabled_and_p(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(_USES_THE_PLUGIN)
    result = pytester.runpytest_subprocess("-p", "quantum_p1")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([_header()])


def test_is_not_loaded_with_autoload_disabled_and_no_p(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(_USES_THE_PLUGIN)
    result = pytester.runpytest_subprocess()
    result.assert_outcomes(errors=1)
    result.stdout.fnmatch_lines(["*fixture 'p1_settings' not found*"])


@pytest.mark.slow
@pytest.mark.parametrize("explicit", [False, True], ids=["entry-point", "entry-point-and-p"])
def test_loads_through_its_entry_point_with_autoload(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, explicit: bool
) -> None:
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(_USES_THE_PLUGIN)
    args = ("-p", "quantum_p1") if explicit else ()
    result = pytester.runpytest_subprocess(*args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines([_header()])


def test_importing_the_plugin_imports_nothing_heavy() -> None:
    # A fresh interpreter: this one has imported everything already.
    script = textwrap.dedent(
        f"""
        import sys
        import pytest
        before = set(sys.modules)
        import pytest_quantum_p1.plugin
        new = sorted(set(sys.modules) - before)
        heavy = [m for m in new if m.split(".")[0] in {HEAVY_MODULES!r}]
        assert not heavy, heavy
        foreign = [m for m in new if not m.startswith("pytest_quantum_p1")]
        assert not foreign, foreign
        """
    )
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr


def test_a_run_that_uses_no_fixture_imports_nothing_heavy(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        f"""
        import sys

        def test_nothing_heavy_was_imported():
            heavy = [m for m in sys.modules if m.split(".")[0] in {HEAVY_MODULES!r}]
            assert not heavy, heavy
        """
    )
    result = pytester.runpytest_subprocess("-p", "quantum_p1")
    result.assert_outcomes(passed=1)


def test_every_public_name_is_exported_and_importable() -> None:
    import pytest_quantum_p1

    for name in pytest_quantum_p1.__all__:
        assert getattr(pytest_quantum_p1, name) is not None, name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        pytest_quantum_p1.nope  # noqa: B018


def test_the_reference_target_has_one_short_name() -> None:
    from pytest_quantum_p1 import _target

    assert _target.TARGET_NAMES == {"reference": REFERENCE_TARGET}
    assert _target.load_target(REFERENCE_TARGET).name == "reference_impl"


@pytest.mark.parametrize("how", ["option", "ini"])
def test_redis_owned_declares_the_urls_database_the_harness_s_in_the_header(
    pytester: pytest.Pytester, how: str
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    url = "redis://ops:hunter2@redis.invalid:6390/3"
    if how == "ini":
        pytester.makeini(f"[pytest]\n{_options.INI_REDIS_OWNED} = true\n")
        result = pytester.runpytest("-p", "quantum_p1", f"--p1-redis={url}")
    else:
        result = pytester.runpytest("-p", "quantum_p1", f"--p1-redis={url}", "--p1-redis-owned")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        [_header(redis="redis://ops:***@redis.invalid:6390/3" + _messages.HEADER_REDIS_OWNED)]
    )
    assert "hunter2" not in result.stdout.str() + result.stderr.str()


# -- options given for a run that does not use them ----------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            [f"{_options.OPT_REPORT}=report.json"],
            _messages.UNUSED_REPORT_WITHOUT_RUN.format(
                option=_options.OPT_REPORT, run=_options.OPT_RUN
            ),
        ),
        (
            [f"{_options.OPT_REDIS_BINARY}=/nonexistent/redis-server"],
            _messages.UNUSED_REDIS_BINARY_WITHOUT_SERVER.format(
                option=_options.OPT_REDIS_BINARY, redis=_options.OPT_REDIS
            ),
        ),
        (
            [
                f"{_options.OPT_REDIS}=redis://127.0.0.1:1/0",
                f"{_options.OPT_REDIS_BINARY}=/nonexistent/redis-server",
            ],
            _messages.UNUSED_REDIS_BINARY_WITHOUT_SERVER.format(
                option=_options.OPT_REDIS_BINARY, redis=_options.OPT_REDIS
            ),
        ),
    ],
    ids=["report-without-p1", "redis-binary-with-fake", "redis-binary-with-a-url"],
)
def test_an_option_the_run_does_not_use_is_a_config_warning(
    pytester: pytest.Pytester, args: list[str], message: str
) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1", "-W", "default", *args)
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*PytestConfigWarning: " + message.replace("[", "[[]")])
    assert not (pytester.path / "report.json").exists()
    # Under -W error (this project's own setting) the warning stops the run.
    strict = pytester.runpytest("-p", "quantum_p1", "-W", "error", *args)
    assert strict.ret != pytest.ExitCode.OK
    assert message in strict.stdout.str() + strict.stderr.str()


@pytest.mark.parametrize(
    "ini",
    [
        f"{_options.INI_REPORT} = report.json",
        f"{_options.INI_REDIS_BINARY} = /nonexistent/redis-server",
    ],
    ids=["report", "redis-binary"],
)
def test_the_same_settings_in_the_ini_file_serve_the_runs_that_use_them_without_a_warning(
    pytester: pytest.Pytester, ini: str
) -> None:
    # An ini file sets them once for the --p1 / server runs; the other runs stay quiet.
    pytester.makeini(f"[pytest]\n{ini}\n")
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest("-p", "quantum_p1", "-W", "error")
    result.assert_outcomes(passed=1)
    assert "PytestConfigWarning" not in result.stdout.str()


def test_options_used_by_their_run_are_not_warned_about(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("def test_nothing(): pass")
    result = pytester.runpytest(
        "-p",
        "quantum_p1",
        "-W",
        "error",
        f"{_options.OPT_REDIS}=server",
        f"{_options.OPT_REDIS_BINARY}=redis-server",
    )
    result.assert_outcomes(passed=1)
