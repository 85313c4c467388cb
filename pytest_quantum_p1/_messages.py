"""Every text a user reads from the plugin, as constants the tests match.

Failure messages keep one order (see STYLE.md): what happened; the candidates
as bullets, closest first; how to tune or opt out; where to read more. Keeping
the texts here lets tests assert on the same strings users see without
copying them.
"""

from __future__ import annotations

# --- configuration ---------------------------------------------------------

#: ``{source}`` is the option (``--p1-redis``) or the ini key (``p1_redis (ini)``).
USAGE_BAD_VALUE = "{source}: expected {expected}, got {value!r}"
#: When pytest's own coercion of a typed ini value fails; ``{error}`` quotes the value.
USAGE_BAD_INI = "{source}: expected {expected} ({error})"

EXPECT_TARGET = "'package.module:attr' naming a pytest_quantum_p1.P1Target"
EXPECT_REDIS = "'fake', 'server' or a redis:// or rediss:// URL"
EXPECT_REDIS_BINARY = "a redis-server executable (a path, or a name found on PATH)"
EXPECT_DURATION = "a positive duration such as '1ms', '250us', '0.5s' or '500ns'"
EXPECT_INSTANCES = "an integer >= 2"
EXPECT_WORKLOAD = (
    "comma-separated key=value pairs with keys minutes, policies, reads_per_s, "
    "updates_per_min, instances, skew, step_s, seed (positive numbers)"
)
EXPECT_BOOL = "a boolean ('true' or 'false')"
EXPECT_REPORT = "a file path (not a directory)"

#: One line in the pytest header; ``{details}`` only appears for ``--p1`` runs.
HEADER = "quantum-p1: target={target}, redis={redis}{details}"

TARGET_LOAD_FAILED = (
    "quantum-p1: cannot load the target {spec!r} (from {source}): {error}\n"
    "Name a module attribute holding a pytest_quantum_p1.P1Target (or a "
    "zero-argument callable returning one) with --p1-target or the ini key "
    "p1_target, as 'package.module:attr'.\n"
    "See README.md, section 'Pointing the harness at your backend'."
)

#: The one ``module:attr`` resolver's texts (targets, store factories, the v2 engine class).
SPEC_INVALID = "{spec!r} must look like 'package.module:attr'"
SPEC_NOT_IMPORTABLE = "cannot import module {module!r}: {error}"
SPEC_MODULE_RAISED = "importing module {module!r} raised {type}: {error}"
SPEC_NO_ATTRIBUTE = "module {module!r} has no attribute {attr!r}"

NOT_A_SERVER = (
    "processes=True needs a real Redis server that other processes can reach, but this "
    "Redis is fakeredis, which lives in one process: use --p1-redis=server or a redis:// URL"
)
REDIS_SERVER_UNAVAILABLE = "quantum-p1: --p1-redis=server needs a private redis-server: {error}"
V2_ENGINE_UNAVAILABLE = (
    "quantum-p1: cannot watch the v2 engine class {spec!r} (P1Target.v2.engine_class): {error}"
)
MARKER_FORBID_V2_MISUSE = (
    "@pytest.mark.forbid_v2 on {nodeid}: takes no arguments, got forbid_v2({args})"
)

# --- events -----------------------------------------------------------------

UNKNOWN_EVENT = "unknown event name {name!r}: it is not in the bus catalogue"
UNKNOWN_EVENT_SUGGEST = "; did you mean {suggestions}?"
UNKNOWN_EVENT_CATALOGUE = "\nThe catalogue has {count} events: {names}"

NOT_PUBLISHED = "event {what} was not published"
NOT_PUBLISHED_IN_TIME = "event {what} was not published within {timeout}"
PUBLISHED_BUT_FORBIDDEN = "event {what} was published, but the test expects it not to be"

PUBLISHED_HEADING = "Published during the recording ({count}, closest match first):"
PUBLISHED_IN_ORDER = "Published during the recording ({count}, in publish order):"
PUBLISHED_MATCHING = "Published and matching ({count}):"
PUBLISHED_NONE = "Nothing was published during the recording."
PUBLISHED_MORE = "  ... and {count} more"

NOT_PUBLISHED_TUNE = (
    "Payloads are matched by subset: only the fields you name are compared, and "
    "pytest_quantum_p1.ANY matches any value of a field that must be present."
)
PUBLISHED_BUT_FORBIDDEN_TUNE = (
    "assert_not_published() fails on any event matching the fields you name "
    "(a subset match): name more fields to forbid a narrower set of events."
)

ORDER_NOT_SUBSEQUENCE_FIRST = (
    "events were not published in the order {order}: {missing!r} was never published"
)
ORDER_NOT_SUBSEQUENCE = (
    "events were not published in the order {order}: {found!r} was published (#{index}), "
    "but {missing!r} was not published after it"
)
ORDER_EXACT_LENGTH = (
    "published event names are not exactly {order}: expected {expected} events, "
    "{actual} were published"
)
ORDER_EXACT_MISMATCH = (
    "published event names are not exactly {order}: at position {index} expected "
    "{expected!r}, got {actual!r}"
)
ORDER_TUNE = (
    "assert_order() matches a subsequence by default (other events may come in "
    "between); exact=True demands exactly these names and no others."
)

MARKER_PUBLISHES_PREFIX = "@pytest.mark.publishes: "
MARKER_PUBLISHES_MISUSE = (
    "@pytest.mark.publishes on {nodeid}: expected publishes(name, **fields) with "
    "name an event name (str), got publishes({args})"
)

EVENTS_READ_MORE = "See README.md, section 'p1_events'."

# --- latency ------------------------------------------------------------------

LATENCY_OVER_BUDGET = "{percentile} latency {measured} is over the budget of {budget}"
LATENCY_TUNE = (
    "Compare another percentile with assert_below(budget, percentile='p50'), or "
    "change the budget (the acceptance run reads --p1-latency-budget / p1_latency_budget)."
)
LATENCY_READ_MORE = "See README.md, section 'Latency'."
LATENCY_LABEL_TAKEN = "latency label {label!r} was already used in this test; pass a unique label="
LATENCY_IN_RUNNING_LOOP = (
    "measure_latency() cannot start an event loop inside a running one: in async "
    "code, await measure_latency_async(...) (or p1_latency.measure_async(...)), or "
    "pass runner= to run the measurement on another loop"
)
