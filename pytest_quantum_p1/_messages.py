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

EXPECT_TARGET = (
    "'package.module:attr' naming a pytest_quantum_p1.P1Target, or 'reference' for the "
    "bundled example backend"
)
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
HEADER_NO_TARGET = "(none)"

#: ``--p1`` (or a fixture that needs the target) with no target configured.
NO_TARGET = (
    "quantum-p1: no target to check. Name your backend's P1Target with "
    "--p1-target=package.module:attr or the ini key p1_target (the harness never picks "
    "one for you); --p1-target=reference checks the bundled example backend.\n"
    "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#pointing-the-harness-at-your-backend"
)

TARGET_LOAD_FAILED = (
    "quantum-p1: cannot load the target {spec!r} (from {source}): {error}\n"
    "Name a module attribute holding a pytest_quantum_p1.P1Target (or a "
    "zero-argument callable returning one) with --p1-target or the ini key "
    "p1_target, as 'package.module:attr'.\n"
    "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#pointing-the-harness-at-your-backend"
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

EVENTS_READ_MORE = "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#p1_events"

# --- latency ------------------------------------------------------------------

LATENCY_OVER_BUDGET = "{percentile} latency {measured} is over the budget of {budget}"
LATENCY_TUNE = (
    "Compare another percentile with assert_below(budget, percentile='p50'), or "
    "change the budget (the acceptance run reads --p1-latency-budget / p1_latency_budget)."
)
LATENCY_READ_MORE = "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#latency"
LATENCY_LABEL_TAKEN = "latency label {label!r} was already used in this test; pass a unique label="
LATENCY_IN_RUNNING_LOOP = (
    "measure_latency() cannot start an event loop inside a running one: in async "
    "code, await measure_latency_async(...) (or p1_latency.measure_async(...)), or "
    "pass runner= to run the measurement on another loop"
)

# --- latency (per call) ------------------------------------------------------

LATENCY_MEASURED = (
    "Measured over {calls} calls, each timed on its own, after {warmup} warm-up calls "
    "(the timer's own cost, {timer}, is in every figure):"
)

# --- P1-3 federation v2 (_v2: scan, guard, files and docs) ---------------------

#: Where the user reads about P1-3 (a README anchor).
V2_READ_MORE = "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#p1-3-federation-v2"
#: Said of a v2 import under ``if TYPE_CHECKING:`` (it never runs, but still counts).
V2_TYPE_CHECKING_ONLY = "TYPE_CHECKING only"
#: Stands for the bridge list in a fix line when the target names no bridge.
V2_NO_BRIDGE = "(no bridge modules configured)"

#: The static scan's message; ``{s}`` is the plural ending.
V2_SCAN_HEADLINE = "{count} direct v2 import{s} outside the bridge"
V2_SCAN_ERRORS_HEADLINE = "{count} file{s} could not be read or parsed, so were not checked"
V2_SCAN_UNRESOLVED_HEADLINE = (
    "{count} dynamic import{s} could not be resolved (not counted as violations)"
)
V2_SCAN_CLEAN = "no direct v2 imports outside the bridge ({files} files scanned)"
V2_SCAN_FIX = (
    "Fix: import v2 modules only from the bridge: {bridges}; "
    "everywhere else, route the call through the bridge."
)
V2_SCAN_VIOLATION_BULLET = "- {path}:{line}  {importer} → {module} ({how})"
V2_SCAN_ERROR_BULLET = "- {path}: {message}"
V2_SCAN_UNRESOLVED_BULLET = "- {path}:{line}  {importer}: {reason} ({how})"

#: One finding of the scan, as ``str()`` gives it.
V2_VIOLATION = "{path}:{line}: {importer} imports v2 module {module} via {how}: {text}"
V2_UNRESOLVED = "{path}:{line}: {importer}: {reason} ({how}): {text}"
V2_FILE_ERROR = "{path}: {message}"

#: Why a file (or source root) was not scanned.
V2_SOURCE_ROOT_MISSING = "source root does not exist"
V2_FILE_UNREADABLE = "cannot read: {error}"
V2_FILE_UNPARSABLE = "does not parse: {error}"
V2_FILE_UNPARSABLE_AT = "does not parse: line {line}: {error}"

#: Why a dynamic import could not be resolved without running the code.
V2_UNRESOLVED_NAME = "module name is not a literal"
V2_UNRESOLVED_PACKAGE = "package is not a literal"
V2_UNRESOLVED_NO_PACKAGE = "relative name without a package"
V2_UNRESOLVED_NAME_BEYOND = "relative name beyond the package"
V2_UNRESOLVED_BEYOND = "relative import beyond the top-level package"
V2_UNRESOLVED_LEVEL = "level is not a literal"
V2_UNRESOLVED_FROMLIST = "fromlist is not a literal"
V2_UNRESOLVED_STAR = "star import from a package holding v2 modules"

#: The run-time guard's message.
V2_RUNTIME_HEADLINE = "{engine} was constructed outside the bridge {count} time(s)"
V2_RUNTIME_FIX = (
    "Fix: construct it only in the bridge: {bridges}; everywhere else, go through the bridge."
)
#: Names the engine in the headline when no construction recorded its class.
V2_RUNTIME_ENGINE_UNKNOWN = "the v2 engine"
#: One construction, as ``str()`` gives it and as its bullet shows it.
V2_CONSTRUCTION = "{filename}:{lineno} in {caller}"
#: ``P1Target.v2.engine_class`` resolves, but not to a class.
V2_ENGINE_NOT_A_CLASS = "{spec} is a {kind}, not a class"

#: Problems with the documents that must carry the federation notice.
V2_DOC_MISSING = "{doc}: document not found"
V2_DOC_UNREADABLE = "{doc}: cannot be read ({error})"
V2_DOC_PHRASE_MISSING = "{doc}: does not mention {phrase!r}"

# --- acceptance run (--p1) ---------------------------------------------------

#: The last line of every criterion's failure message.
ACCEPTANCE_READ_MORE = "See https://github.com/pytest-quantum-p1/pytest-quantum-p1#the-acceptance-run for what each criterion proves."
#: The last bullet when a list of findings is cut short.
ACCEPTANCE_BULLETS_MORE = "  - ... and {count} more"

#: The heading of each task's group in the checklist and on the HTML page.
ACCEPTANCE_TASK_TITLES = {
    "P1-1": "P1-1 missing critical events",
    "P1-2": "P1-2 policy store cache and invalidation",
    "P1-3": "P1-3 federation v2 deprecation",
    "deploy": "Deployment checklist",
}
#: What each criterion proves, by criterion id (the JSON's ``title``).
ACCEPTANCE_CRITERION_TITLES = {
    "P1-1.catalogue": "the required events are in the bus catalogue",
    "P1-1.logged": "each required event is logged for monitoring",
    "P1-2.cached-read": "cached reads stay under the latency budget",
    "P1-2.cold-vs-warm": "the cache pays off against storage",
    "P1-2.hit-rate": "hit rate > 90% after 5 minutes of operation",
    "P1-2.ttl": "entries expire after the TTL",
    "P1-2.invalidation": "every instance converges after an update on any one",
    "P1-2.no-stale-reads": "property-based search finds no stale read",
    "P1-2.cluster-shards": "on a Redis Cluster, instances converge after updates on every shard",
    "P1-2.cluster-failover": "on a Redis Cluster, no stale read after a failover of every master",
    "P1-2.cluster-node-loss": "on a Redis Cluster, losing the subscriptions' node flushes and resubscribes in time",
    "P1-3.files-removed": "the legacy v2 files are removed",
    "P1-3.no-direct-imports": "nothing but the bridge imports v2",
    "P1-3.deprecation-warning": "the v2 engine warns DeprecationWarning at its caller",
    "P1-3.bridge-only-at-runtime": "only the bridge constructs the v2 engine at run time",
    "P1-3.bridge-relays": "the bridge relays v3 events to v2 nodes",
    "P1-3.docs": "the docs name v3 as primary and v2 as deprecated",
    "deploy.health": "the health check reports healthy",
}
#: The title of the criterion of each required event.
ACCEPTANCE_EVENT_TITLE = "the real action publishes {name} with its payload and a UTC timestamp"

# P1-1: events
P1_1_CATALOGUE_SUMMARY = "{present}/{required} events in the catalogue"
P1_1_CATALOGUE_MISSING = "{count} required event(s) missing from the bus catalogue:"
P1_1_CATALOGUE_CLOSEST = "{name!r} (closest: {closest})"
P1_1_CATALOGUE_FIX = "Add them to the bus's event map (seed: backend/core/event_bus.py)."

P1_1_EVENT_SUMMARY = "published once, fields {fields}"
P1_1_EVENT_SUMMARY_UTC = "published once, fields {fields} (UTC)"
P1_1_EVENT_NOT_IN_CATALOGUE_SUMMARY = "not in the bus catalogue"
P1_1_EVENT_NOT_IN_CATALOGUE = (
    "{name!r} is not in the bus catalogue, so its publication cannot be recorded "
    "(see P1-1.catalogue)."
)
P1_1_EVENT_NOT_AS_EXPECTED_SUMMARY = "not published as expected ({count} publish(es))"
P1_1_EVENT_NOT_AS_EXPECTED = "the real action behind {name!r} did not publish it as expected."
P1_1_EVENT_NOT_AS_EXPECTED_FIX = (
    "Publish the values of the change that happened, as the target's action returns them."
)
P1_1_EVENT_PROBLEMS_SUMMARY = "published {count} time(s), {problems} problem(s)"
P1_1_EVENT_NOT_AS_REQUIRED = "{name!r} was published, but not as required:"
P1_1_EVENT_FIELD_MISSING = "field {field!r} is missing"
P1_1_EVENT_REPEATED = "one action published it {count} times (once expected)"
P1_1_EVENT_TIMESTAMP_NOT_A_STRING = "timestamp is a {type}, not an ISO-8601 string"
P1_1_EVENT_TIMESTAMP_NOT_ISO = "timestamp {value!r} is not ISO-8601"
P1_1_EVENT_TIMESTAMP_NAIVE = (
    "timestamp {value!r} has no UTC offset (naive datetime; use datetime.now(timezone.utc))"
)
P1_1_EVENT_TIMESTAMP_NOT_UTC = "timestamp {value!r} is not UTC"
P1_1_EVENT_PAYLOAD = "  payload: {payload!r}"
P1_1_EVENT_REQUIRED_FIELDS = "Required fields: {fields}."
P1_1_EVENT_FIX = (
    "Publish the event once per action, with every required field and an aware UTC timestamp."
)

P1_1_LOGGED_SUMMARY = "{logged}/{required} events logged for monitoring"
P1_1_LOGGED_MISSING = "some required events are not logged for monitoring:"
P1_1_LOGGED_NOT_IN_CATALOGUE = (
    "{name}: not in the bus catalogue, so it cannot be recorded (see P1-1.catalogue)"
)
P1_1_LOGGED_NOTHING_PUBLISHED = "{name}: the action published nothing to log"
P1_1_LOGGED_COUNT_DIFFERS = (
    "{name}: published {published} time(s), logged {logged} time(s) on logger {logger!r}"
)
P1_1_LOGGED_PAYLOAD_DIFFERS = "{name}: the log record's payload differs from the published one"
P1_1_LOGGED_FIX = (
    "Log one record per publish on {logger!r} carrying the name and payload, e.g. "
    "logger.info('event %s', name, extra={{'event': name, 'payload': payload}})."
)

# P1-2: cache
P1_2_CACHED_READ_SUMMARY = (
    "cached read p50 {p50}, p99 {p99}, p99.9 {p999} (budget {budget}, per call)"
)
P1_2_CACHED_READ_NOT_CACHED = (
    "warm reads were not served from the cache: {storage_reads} of {reads} reads went to Redis."
)
P1_2_CACHED_READ_NOT_CACHED_FIX = (
    "Cache the policy on a miss and serve it until it expires or is invalidated."
)
P1_2_CACHED_READ_TOO_SLOW = "cached reads are too slow: p99 {p99} is over the {budget} budget."
#: One bullet each.
P1_2_CACHED_READ_FIGURES = (
    "p50: {p50}",
    "p90: {p90}",
    "p99: {p99}",
    "p99.9: {p999}",
    "max: {max}",
    "each read timed on its own; the timer's cost, {timer}, is in every figure",
)
P1_2_CACHED_READ_TOO_SLOW_FIX = (
    "Keep the hit path free of I/O, locks and copies; tune the budget with --p1-latency-budget."
)

P1_2_COLD_VS_WARM_SUMMARY = (
    "cached {speedup:.0f}x faster than storage (mean cold {cold}, warm {warm})"
)
P1_2_COLD_VS_WARM_NO_COLD_READ = (
    "reads after the TTL did not go to storage ({storage_reads} storage reads for "
    "{expired} expired reads), so no cold read could be measured."
)
P1_2_COLD_VS_WARM_NO_COLD_READ_FIX = "Entries must expire after the TTL (see P1-2.ttl)."
P1_2_COLD_VS_WARM_NO_PAYOFF = (
    "the cache does not pay off: a cached read is only {speedup:.1f}x faster than a read "
    "from storage (at least {minimum:.0f}x expected)."
)
#: One bullet each.
P1_2_COLD_VS_WARM_FIGURES = ("cold mean: {cold}", "warm mean: {warm}")
P1_2_COLD_VS_WARM_NO_PAYOFF_FIX = (
    "Serve hits from memory without touching Redis or re-parsing JSON."
)

P1_2_HIT_RATE_SUMMARY = (
    "hit rate {hit_rate:.1%} after {minutes:g} simulated min "
    "({reads} reads, {storage_reads} from storage)"
)
P1_2_HIT_RATE_TOO_LOW = (
    "hit rate {hit_rate:.1%} is not above {minimum:.0%} after {minutes:g} simulated "
    "minutes: {storage_reads} of {reads} reads went to Redis (counted by the harness)."
)
P1_2_HIT_RATE_WORKLOAD = (
    "Workload: {policies} policies, {reads_per_s:g} reads/s, {updates_per_min:g} "
    "updates/min over {instances} instances, TTL {ttl:g} s."
)
P1_2_HIT_RATE_TOO_LOW_FIX = (
    "Check that hits are served from memory and that only the updated policy is invalidated."
)

P1_2_TTL_SUMMARY = "entries expire after the {ttl:g} s TTL"
P1_2_TTL_NOT_CACHED = (
    "instance 1 did not cache {name!r}: a read at half the TTL ({half:g} s) went to Redis."
)
P1_2_TTL_OUTLIVED_SUMMARY = "an entry outlived the {ttl:g} s TTL"
P1_2_TTL_OUTLIVED = (
    "an entry outlived its TTL: {ttl:g} s after it was cached, with its invalidation "
    "lost, instance 1 still served {expired!r} instead of {{'v': 2}} (it served "
    "{cached!r} before)."
)
P1_2_TTL_OUTLIVED_FIX = (
    "Store each entry's expiry from the injected clock and treat expired entries as misses."
)

P1_2_INVALIDATION_SUMMARY = (
    "{instances} instances converged after {rounds} updates; propagation p99 {p99:.2f} ms"
)
P1_2_INVALIDATION_SUMMARY_PROCESSES = (
    "{instances} processes converged after {rounds} updates; propagation p99 {p99:.2f} ms"
)
P1_2_INVALIDATION_NOT_CONVERGED = (
    "after an update on instance {instance}, not every instance converged."
)
P1_2_INVALIDATION_NOT_CONVERGED_FIX = (
    "Subscribe every instance to the invalidation channel and drop the cached entry "
    "on each message."
)
P1_2_INVALIDATION_UNPROCESSED = (
    "{count} invalidation(s) were never processed by their instance, although reads "
    "converged (the entries may simply not have been cached)."
)

P1_2_NO_STALE_READS_SUMMARY = "no stale read in {scenarios} generated scenarios (seed {seed})"
P1_2_STALE_READ_FOUND_SUMMARY = "stale read found in {scenarios} generated scenarios (seed {seed})"
P1_2_STALE_READ_FOUND = "the property-based search found a stale read:"
P1_2_STALE_READ_KIND = "{what}, in scenario {scenarios} (seed {seed}):"
P1_2_STALE_READ_FOUND_FIX = (
    "Drop an entry on each invalidation, flush the cache when the invalidation link is "
    "lost, never cache a read that raced an invalidation, store a new value before "
    "publishing its invalidation (or both in one transaction), and drop or replace the "
    "writer's own copy when update_policy returns."
)

# P1-3: federation v2
P1_3_FILES_REMOVED_SUMMARY = "{count} legacy v2 files absent"
P1_3_FILES_LEFT_SUMMARY = "{left} of {count} legacy v2 files still present"
P1_3_FILES_LEFT = "{left} legacy v2 file(s) still exist:"
P1_3_FILES_LEFT_FIX = "Delete them (the seed keeps only federated_engine_v2.py, for the bridge)."

P1_3_NO_DIRECT_IMPORTS_SUMMARY = "{files} files scanned, {violations} direct v2 imports"

P1_3_DEPRECATION_SUMMARY = "{engine}() warns DeprecationWarning at the caller's line"
P1_3_NO_DEPRECATION_SUMMARY = "{engine}() emits no DeprecationWarning"
P1_3_NO_DEPRECATION = "constructing {engine} emitted no DeprecationWarning."
P1_3_NO_DEPRECATION_SEEN = "Warnings seen:"
P1_3_NO_DEPRECATION_FIX = (
    "In __init__: warnings.warn('... deprecated ...', DeprecationWarning, stacklevel=2)."
)
P1_3_WARNS_ELSEWHERE_SUMMARY = "{engine}() warns at {file}:{line}, not at its caller"
P1_3_WARNS_ELSEWHERE = (
    "the DeprecationWarning of {engine} points at {file}:{line}, not at the line that "
    "constructed it ({caller_file}:{caller_line})."
)

P1_3_BRIDGE_ONLY_SUMMARY = (
    "{constructions} v2 engine constructions in {seconds:.1f} s watched, all through the bridge"
)
P1_3_OUTSIDE_BRIDGE_SUMMARY = (
    "{constructions} v2 engine constructions, {outside} outside the bridge"
)

P1_3_NO_RELAY_PROBE = "the target declares no relay_probe"
P1_3_RELAY_SUMMARY = "relayed to {reached}/{nodes} v2 node(s), once each"
P1_3_RELAY_MISSED = (
    "the bridge did not relay the v3 event exactly once to every v2 node "
    "({reached} of {nodes} got it):"
)
P1_3_RELAY_SENT = "  sent: {payload!r}"
P1_3_RELAY_RECEIVED = "{node}: received {count} message(s): {messages!r}"
P1_3_RELAY_NO_NODE = "the probe registered no v2 node, so nothing could be relayed"
P1_3_RELAY_MISSED_FIX = (
    "Subscribe the bridge to the v3 federation events and call broadcast_to_v2_nodes."
)

P1_3_DOCS_SUMMARY = "{docs} docs carry the deprecation notice"
P1_3_DOCS_PROBLEMS_SUMMARY = "{problems} notice problem(s) in {docs} docs"
P1_3_DOCS_MISSING_NOTICE = "the architecture docs do not all carry the federation notice:"
P1_3_DOCS_MISSING_NOTICE_FIX = (
    "Add the seed's notice: '**Current:** Federation v3 (EventBus-based)' and "
    "'**Deprecated:** Federation v2 (retained for bridge compatibility only)'."
)

# deploy
DEPLOY_NO_HEALTH_CHECK = "the target declares no health check"
DEPLOY_HEALTH_SUMMARY = "health status {status!r}"
DEPLOY_HEALTH_NOT_OK = "the health check reports {status!r}, not 'ok':"
DEPLOY_HEALTH_NOT_OK_FIX = (
    "Fix what the report names as down; the target's health function decides 'ok'."
)

# The checklist and the reports
#: The checklist's mark of each outcome.
ACCEPTANCE_MARKS = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "skipped": "SKIP"}
ACCEPTANCE_NONE_RAN = "no criteria ran"
#: The title of the checklist's section in the terminal summary.
ACCEPTANCE_SECTION = "quantum-p1 acceptance"
ACCEPTANCE_REPORTS_WRITTEN = "report: {json} and {html}"
ACCEPTANCE_PAGE_TITLE = "quantum-p1 acceptance report"
ACCEPTANCE_PAGE_CHARTS = "Charts"
ACCEPTANCE_PAGE_RUN = "Run"
ACCEPTANCE_CHART_NO_DATA = "(no data)"
ACCEPTANCE_CHART_LATENCY_CACHED = "cached read"
ACCEPTANCE_CHART_LATENCY_COLD = "cold read (storage)"
ACCEPTANCE_CHART_LATENCY_X = "latency per call (log scale)"
ACCEPTANCE_CHART_LATENCY_Y = "percentile of calls"
ACCEPTANCE_CHART_LATENCY_BUDGET = "budget {budget}"
ACCEPTANCE_CHART_LATENCY_CAPTION = (
    "Cached vs cold read latency, every call timed on its own: each call's latency against "
    "its percentile, with the tail (p99, p99.9, slowest call) spread out. Further left is "
    "faster; the dashed line is the cached-read budget."
)
ACCEPTANCE_CHART_HIT_RATE_CUMULATIVE = "cumulative hit rate"
ACCEPTANCE_CHART_HIT_RATE_WINDOW = "hit rate per interval"
ACCEPTANCE_CHART_HIT_RATE_X = "simulated time (s)"
ACCEPTANCE_CHART_HIT_RATE_Y = "hit rate"
ACCEPTANCE_CHART_HIT_RATE_REQUIRED = "{rate:.2f} required"
ACCEPTANCE_CHART_HIT_RATE_CAPTION = (
    "Hit rate over the simulated minutes of operation, counted from storage reads the "
    "harness observed."
)
ACCEPTANCE_CHART_PROPAGATION_BAR = "instance {index}"
ACCEPTANCE_CHART_PROPAGATION_Y = "p99 propagation (ms)"
ACCEPTANCE_CHART_PROPAGATION_CAPTION = (
    "Invalidation propagation per instance (p99, update call to invalidation processed)."
)

# --- harness (portal, pubsub control, observed reads, members, processes, cluster) ---

# The portal: one event loop in a thread, reachable from sync code and other loops.
LOOP_DID_NOT_RUN = "the event loop did not run {fn} within {timeout:g}s: is something blocking it?"
LOOP_WOULD_BLOCK = (
    "{fn} would block the event loop it runs on; "
    "from a coroutine on that loop, use the '_async' form and await it"
)
LOOP_NOT_RUNNING = "cannot run {fn}: its event loop is not running"
LOOP_CALL_TIMED_OUT = "{fn} did not finish within {timeout:g}s"
LOOP_NOT_OWNED = "create {what} inside a coroutine on the loop the store runs on, or pass loop="
PORTAL_CLOSED = "this Portal is closed"
PORTAL_CLOSED_FROM_ITS_THREAD = "a Portal cannot be closed from its own thread"

# ControlledPubSub. The first two mirror what redis.asyncio says when a pubsub is
# read before subscribing or after closing, so stores see the errors they would
# see in production.
PUBSUB_NOT_CONNECTED = (
    "pubsub connection not set: did you forget to call subscribe() or psubscribe()?"
)
PUBSUB_DISCONNECTED = "connection to Redis lost ({label}: disconnect() by the test harness)"
PUBSUB_CLOSED = "{label} is closed: call client.pubsub() for a new one"
PUBSUB_TAKE_NEGATIVE = "{verb}(n) needs n >= 0, got {n}"
PUBSUB_TAKE_TOO_MANY = (
    "{label}: cannot {verb} {n} message(s), {held} held "
    "(wait_pending(n) first; hold() must be in force before they arrive)"
)
WAIT_PENDING_TIMED_OUT = "{label}: {held} message(s) held after {timeout:g}s, wanted {count}{hint}"
WAIT_PENDING_NOT_HOLDING = " (hold() is not in force)"
WAIT_HANDED_OUT_TIMED_OUT = (
    "{label}: the store took {taken} message(s) in {timeout:g}s, wanted {count}"
)
WAIT_PROCESSED_TIMED_OUT = "{label}: no processed message matching {match!r} after {timeout:g}s"
WAIT_SUBSCRIBED_TIMED_OUT = "{label}: no confirmed subscription to {channel!r} after {timeout:g}s"

# ObservedRedis.
WAIT_PENDING_READS_TIMED_OUT = (
    "{label}: {pending} read(s) pending after {timeout:g}s, wanted {count} "
    "(did hold_reads() run before the read?)"
)
WAIT_SUBSCRIPTIONS_TIMED_OUT = (
    "{label}: the store called pubsub() {made} time(s) in {timeout:g}s, wanted {count}"
)

# One instance: where a settle marker, or its subscription, is.
WHERE_NO_PUBSUB = "never called client.pubsub()"
WHERE_CLOSED = "closed its subscription ({label}) and did not open another"
WHERE_LOST = "lost its subscription ({label}) and did not resubscribe"
SUBSCRIPTION_CLOSED = "closed its subscription ({label})"
SUBSCRIPTION_LOST = "its subscription ({label}) lost its connection"
SUBSCRIPTION_CHANNELS = "subscribed to {channels}"
NOT_RESUBSCRIBED = (
    "{label} did not resubscribe to {channel!r} within {timeout:g}s: its store called "
    "pubsub() {count} time(s), {after} before the wait; {state}"
)
SUBSCRIPTION_KEPT = "{label} still had a live subscription to {channel!r} after {timeout:g}s"

# Store factories named by import strings (process clusters).
STORE_FACTORY_SPEC_INVALID = (
    "the store factory must be an import string 'package.module:attr' (a P1Target, a "
    "callable returning one, or a (redis, clock) -> store factory), got {spec!r}: {error}"
)
STORE_FACTORY_NOT_A_TARGET = "{spec} returned a {type}, not a P1Target"
STORE_FACTORY_WRONG_KIND = (
    "{spec} is a {type}: expected a P1Target, a callable returning one, "
    "or a (redis, clock) -> store factory"
)
FACTORY_NOT_IMPORTABLE = (
    "processes=True needs a store factory its child processes can import, but {factory!r} "
    "is not reachable as 'module:attr' ({reason}); pass its import string instead"
)
FACTORY_HAS_NO_IMPORT_NAME = "a lambda, a local function or an instance has no importable name"
FACTORY_NAME_NAMES_ANOTHER = "{spec} names another object"

# Store instances in processes of their own.
PROCESS_EXITED = "{label} exited with code {code}{doing}"
PROCESS_EXITED_DOING = " while running {ops}"
PROCESS_FAILED_TO_START = "{label}: its process could not start the store:\n{detail}"
PROCESS_DID_NOT_START = "{label} did not start within {timeout:g}s"
PROCESS_SILENT = (
    "{label} did not answer {op!r} within {timeout:g}s: its process is alive but "
    "its event loop does not answer (blocked, or swamped)"
)
PROCESS_STUCK = "its process did not answer {op!r}: it may be stuck"
PROCESS_NO_ANSWER = "no answer from its process"
PROCESS_CLOSED = "{label} is closed"
PROCESS_RAISED = "raised in {label} (pid {pid}):\n{traceback}"

# The cluster.
CLUSTER_NEEDS_AN_INSTANCE = "a cluster needs at least one instance, got {instances}"
CLUSTER_NO_SUCH_INSTANCE = "no instance {instance}: this cluster has instances 0..{last}"
CLUSTER_INSTANCE_NOT_LOCAL = "{label} runs in another process: it has no local objects"
CLUSTER_NEVER_CALLED_PUBSUB = "instance {instance} never called client.pubsub()"
CLUSTER_NOT_A_REDIS_SOURCE = (
    "PolicyCluster needs a RedisSource or a redis:// URL for its Redis, got {got!r}"
)
INITIALIZE_TIMED_OUT = "{label}: initialize() did not return within {timeout:g}s"
NOT_SUBSCRIBED = (
    "{count} of {total} store instance(s) did not subscribe to {channel!r} within "
    "{timeout:g}s of initialize()"
)
NOT_CONVERGED = (
    "policy {name!r} did not converge: {count} of {total} instance(s) read another value "
    "after settle()"
)
NOT_CONVERGED_EXPECTED = "expected{origin}: {expected!r}"
NOT_CONVERGED_ORIGIN = " (last updated through instance {instance})"
NOT_CONVERGED_HEADING = "instances reading something else, closest first:"
NOT_CONVERGED_RAISED = "raised {type}: {error}"
NOT_CONVERGED_AGREEING = "instances reading the expected value: {instances}"
NOT_CONVERGED_TUNE = (
    "settle() had returned, so every invalidation sent was already handled: these "
    "values are not in flight; the store kept or re-cached them. If the store is meant "
    "to converge by TTL only, advance the injected clock past it before asserting."
)

# --- stateful machine (_stateful: steps, instruments, model, machine, search) ---

# What a read broke: message heads the tests match.
MACHINE_STALE_READ = (
    "stale read: instance {instance} read {name!r} = v{version}, but v{newer} was written "
    "{age:g}s earlier (virtual clock) and nothing excuses the old value"
)
MACHINE_NOT_MONOTONIC = (
    "non-monotonic read: instance {instance} read {name!r} = v{version} after it had "
    "already returned v{seen}"
)
MACHINE_PAST_TTL = (
    "stale past the TTL: instance {instance} read {name!r} = v{version} {age:g}s after v{newer} "
    "was written; the TTL is {ttl:g}s"
)
MACHINE_PAST_TTL_IN_FLIGHT = " (+{seconds:g}s for the longest in-flight fetch)"
MACHINE_CACHED_ACROSS_LINK_LOSS = (
    "cached across a link loss: instance {instance} served {name!r} = v{version} without a "
    "storage read, although its invalidation link was {event} since it last read it"
)
MACHINE_LINK_CUT_AT = "cut at step {step}"
MACHINE_LINK_BACK_AT = "re-established at step {step}"
MACHINE_IMPOSSIBLE_VALUE = "instance {instance} read {name!r} = {value!r}, which no update wrote"
MACHINE_WRITTEN_AS = "\nv{version} was written as {written!r}"
MACHINE_NOT_IDLE = (
    "instance {instance} did not settle within {timeout:g}s after {step}: {whereabouts}"
)

# The evidence under a head.
MACHINE_VALUE_FROM = "  the value came from {source}"
MACHINE_FROM_STORAGE = "a storage read"
MACHINE_FROM_CACHE = "its cache (no storage read)"
MACHINE_NEWER_WRITES = "  newer writes of {name!r}, and their invalidation on the way:"
MACHINE_NEWER_WRITE = "    - v{version} by instance {writer} at step {step}, t={at:g}: {fate}"
MACHINE_FATE_DELIVERED = "delivered (step {steps})"
MACHINE_FATE_PENDING = "{count} pending"
MACHINE_FATE_DROPPED = "{count} dropped"
MACHINE_FATE_LOST = "{count} lost when the link was cut (the store must flush)"
MACHINE_FATE_NONE = "none arrived (the store published nothing it received)"
MACHINE_LISTENER_ENDED = "its listener task {task!r} {what} (step {step})"
MACHINE_LISTENER_DIED = "died: {type}: {error}"
MACHINE_LISTENER_RETURNED = "returned"
MACHINE_OTHER_DEATH = "  instance {instance}: {death}"
MACHINE_STEPS = (
    "\n  steps of this example ({machine}, {instances} instances, TTL {ttl:g}s):\n{steps}"
)

# Why an instance is not idle (the {whereabouts} of MACHINE_NOT_IDLE).
MACHINE_WHERE_CUT = "its link was cut; its listener neither ended nor resubscribed"
MACHINE_WHERE_UNCONFIRMED = "Redis has not confirmed its subscription yet"
MACHINE_WHERE_NO_READER = (
    "nothing reads its subscription (no task called get_message(), listen() or run())"
)
MACHINE_WHERE_HANDLING = "its listener is still handling the message {data!r}"
MACHINE_WHERE_WAITING = "{count} message(s) wait for its listener, which is busy elsewhere"
MACHINE_WHERE_BUSY = "its listener is busy elsewhere (not waiting in get_message())"
MACHINE_WHERE_NEVER_REACHED = "a message published on its channel never reached it"
MACHINE_WHERE_NO_SUBSCRIPTION = "no subscription"

# Configuration and usage errors.
MACHINE_UNKNOWN_RULE = "unknown rule {rule!r}; the rules are {rules}"
MACHINE_UNKNOWN_DISABLED_RULES = (
    "{machine}.disabled_rules names unknown rule(s) {unknown}; the rules are {rules}"
)
MACHINE_NO_STORE_FACTORY = (
    "{machine}.store_factory is not set: assign a "
    "(redis client, clock) -> store callable, or use machine_for(...)"
)
MACHINE_AT_LEAST_ONE = "{name} must be >= 1, got {value}"
MACHINE_BAD_TTL = "{machine}.ttl must be a finite number >= 0, got {ttl!r}"
MACHINE_NO_NAMES = "names must not be empty"
MACHINE_NO_SUCH_INSTANCE = "no instance {instance}: 0..{last}"
MACHINE_MIRROR_BUG = (
    "harness bug: instance {instance} holds {held} message(s), the machine expected {expected}"
)

# --- P1-1 events: what monitoring sees, failing subscribers, state, zones (issue 12) ---

ACCEPTANCE_CRITERION_TITLES["P1-1.failing-subscriber"] = (
    "a failing subscriber keeps no event from the other subscribers or monitoring"
)

#: Every P1-1 criterion, when the target lists no required event: nothing observed.
P1_1_NO_REQUIRED_EVENTS_SUMMARY = "no required events declared"
P1_1_NO_REQUIRED_EVENTS = (
    "the target declares no required events, so nothing was checked; the seed requires {names}."
)
P1_1_NO_REQUIRED_EVENTS_FIX = (
    "List them in P1Target.required_events, each with the real action that publishes it."
)

# The criterion of each required event.
P1_1_EVENT_NOTHING_EXPECTED_SUMMARY = "nothing to compare: the action returned no values"
P1_1_EVENT_NOTHING_EXPECTED = (
    "the action behind {name!r} returned no values to compare, so its payload was not "
    "checked against the change it made."
)
P1_1_EVENT_NOTHING_EXPECTED_FIX = (
    "Return the values the event must carry from RequiredEvent.action, "
    "e.g. {{'old_mode': 'normal', 'new_mode': 'defensive'}}."
)
P1_1_EVENT_TIMESTAMP_LOCAL = (
    "timestamp {value!r} follows the local zone: the harness ran the action in zone "
    "UTC{zone} and the timestamp carries that offset"
)
P1_1_EVENT_TIMESTAMP_OFF_CLOCK = (
    "timestamp {value!r} is {off} away from the harness's UTC clock ({now}); the action ran "
    "in zone UTC{zone}, so this looks like local time labelled as UTC"
)
P1_1_EVENT_STATE_BEHIND = (
    "{field}: the event announces {announced!r}, but a subscriber receiving it read "
    "{current!r} from the system (published before the state changed)"
)
P1_1_EVENT_STATE_FIX = "Change the state first, then publish the event that announces it."
P1_1_EVENT_STATE_HOOK_RAISED = (
    "RequiredEvent.announced_state of {name!r} raised {type} while the event was delivered: {error}"
)
#: Appended to the summary of an event criterion whose state was not read.
P1_1_EVENT_STATE_UNCHECKED = "; state at delivery not checked: {why}"
P1_1_EVENT_STATE_NO_HOOK = "no RequiredEvent.announced_state"
P1_1_EVENT_STATE_UNREAD = "announced_state read no announced field"
#: Appended to the summary where the platform cannot switch zones (no time.tzset).
P1_1_EVENT_ZONE_UNCHECKED = "; not run under a non-UTC zone (no time.tzset here)"

# P1-1.logged: what production monitoring sees.
P1_1_LOGGED_SUMMARY_LEVEL = "{logged}/{required} events logged for monitoring at {level} or above"
P1_1_LOGGED_BELOW_LEVEL = (
    "{name}: logged at {level} on {logger!r}, below {production}, the level production "
    "monitoring sees (P1Target.monitor_level)"
)
P1_1_LOGGED_LEVEL_FIX = (
    "Log the monitoring records at {production} or above, or declare the level your "
    "production monitoring keeps in P1Target.monitor_level."
)
P1_1_MONITOR_RECORD_RAISED = (
    "P1Target.monitor_record raised {type} reading a record of {logger!r}: {error}"
)

# P1-1.failing-subscriber: a subscriber that raises must not cost anyone else the event.
P1_1_FAILING_SUBSCRIBER_RAISED = (
    "raised on purpose by the quantum-p1 harness (P1-1.failing-subscriber)"
)
P1_1_FAILING_SUBSCRIBER_SUMMARY = (
    "{events}/{required} events reach subscribers and monitoring past a raising subscriber"
)
P1_1_FAILING_SUBSCRIBER_PROBLEMS_SUMMARY = "{problems} problem(s) with a failing subscriber"
P1_1_FAILING_SUBSCRIBER_HEADLINE = (
    "a subscriber that raises keeps the event from others (the real action ran with a "
    "raising subscriber subscribed first, then last):"
)
P1_1_FAILING_SUBSCRIBER_MISSED = (
    "{name}, failing subscriber subscribed {place}: the other subscriber did not receive it"
)
P1_1_FAILING_SUBSCRIBER_NOT_LOGGED = (
    "{name}, failing subscriber subscribed {place}: no monitoring record on {logger!r}"
)
P1_1_FAILING_SUBSCRIBER_ESCAPED = (
    "{name}, failing subscriber subscribed {place}: its exception escaped publish "
    "and the action raised it"
)
P1_1_FAILING_SUBSCRIBER_ACTION_RAISED = (
    "{name}, failing subscriber subscribed {place}: the action raised {type}: {error}"
)
P1_1_FAILING_SUBSCRIBER_NOTHING = (
    "{name}, failing subscriber subscribed {place}: the action published nothing, "
    "so nothing was observed"
)
P1_1_FAILING_SUBSCRIBER_NOT_CALLED = (
    "{name}, failing subscriber subscribed {place}: it was never called, so nothing was "
    "observed about a failing subscriber"
)
P1_1_FAILING_SUBSCRIBER_CANNOT_SUBSCRIBE = (
    "{name}: the bus refused a subscriber ({type}: {error}; see P1-1.catalogue)"
)
P1_1_FAILING_SUBSCRIBER_FIX = (
    "Call each subscriber in its own try/except (or its own task), log the monitoring record "
    "whatever the subscribers do, and never let publish raise because of a subscriber."
)

# --- P1-2 cache: verdicts you can trust (issue 12) ------------------------------

ACCEPTANCE_CRITERION_TITLES.update(
    {
        "P1-2.no-reparse": "a cached read does not parse the policy again (its cost is flat in size)",
        "P1-2.counters": "the store's own hit/miss counters agree with what the harness counted",
        "P1-2.read-your-writes": "the writer reads its own update as soon as update_policy returns",
        "P1-2.write-then-invalidate": "the new value is stored before its invalidation goes out",
        "P1-2.link-recovery": "after a lost link, invalidation and caching work again",
        "P1-2.garbage-messages": "garbage on the invalidation channel does not stop the listener",
    }
)

# The latency criteria wait for the store's own invalidation before timing warm reads.
P1_2_OWN_INVALIDATION_NOT_PROCESSED = (
    "after update_policy({name!r}) returned, the store's own listener processed no message "
    "on {channel!r} within {timeout:g} s (awaited: the invalidation every instance receives, "
    "the writer included, so that warm reads do not race it)."
)
P1_2_OWN_INVALIDATION_STATE = (
    "The store made {subscriptions} subscription(s); its listener took {taken} message(s) "
    "on them in all."
)
P1_2_OWN_INVALIDATION_FIX = (
    "Publish an invalidation on {channel!r} on every update (see P1-2.invalidation)."
)

P1_2_TTL_FIRST_READ_WRONG = (
    "right after the update on instance 0 settled, instance 1 served {got!r} for {name!r} "
    "instead of {expected!r}."
)
P1_2_TTL_FIRST_READ_FIX = "Serve what storage holds once an update has settled."
P1_2_TTL_NO_INVALIDATION = (
    "instance 1 received no invalidation for {name!r} within {timeout:g} s of the update on "
    "instance 0 (awaited, to drop it so that only the TTL can refresh the entry)."
)
P1_2_TTL_NO_INVALIDATION_FIX = (
    "Publish the policy's name on the invalidation channel on every update."
)

P1_2_INVALIDATION_NOT_SETTLED = (
    "after an update on instance {instance}, not every instance processed the invalidations "
    "sent to it:"
)
P1_2_INVALIDATION_NOT_SETTLED_FIX = (
    "Handle each invalidation message and come back for the next: a listener must not stop "
    "or block."
)
#: One line per instance that did not converge, by what the harness saw it receive.
P1_2_INVALIDATION_PROCESSED_STALE = (
    "instance {instance} received and processed the invalidation of {name!r} ({ms:.2f} ms "
    "after the update) yet kept its old value: its handler did not drop the entry."
)
P1_2_INVALIDATION_OTHER_MESSAGES = (
    "instance {instance} processed {count} message(s) on the channel after the update, none "
    "of them exactly {name!r}: {texts}"
)
P1_2_INVALIDATION_NOTHING_PROCESSED = (
    "instance {instance} processed no invalidation of {name!r} after the update, although "
    "Redis confirmed its subscription to {channel!r}."
)
P1_2_INVALIDATION_DROP_FIX = (
    "Drop the named entry when its invalidation arrives. If the handler compares the "
    "message with str names while the client delivers bytes (decode_responses=False), "
    "nothing ever matches: decode the message data before looking the name up."
)
P1_2_INVALIDATION_PUBLISH_FIX = (
    "Publish the policy's name on {channel!r} on every update, and drop the named entry "
    "when it arrives."
)

P1_2_NO_REPARSE_SUMMARY = (
    "cached read {large} for a policy of {size}, {small} for a small one ({ratio:.1f}x)"
)
P1_2_NO_REPARSE_GROWS = (
    "a cached read costs more the larger the policy: {large} for a policy of {size}, {small} "
    "for a small one ({ratio:.1f}x, at most {maximum:g}x expected). The hit path parses "
    "(or deep-copies) the stored policy on every read."
)
#: One bullet each.
P1_2_NO_REPARSE_FIGURES = (
    "small policy ({small_size}): median {small}",
    "large policy ({size}, nested): median {large}",
    "decoding the large policy's JSON once, here: {decode}",
    "medians of {reads} interleaved reads of each, every read timed on its own",
)
P1_2_NO_REPARSE_NOT_CACHED = (
    "reads of a policy of {size} were not served from the cache: {storage_reads} of {reads} "
    "went to Redis."
)
P1_2_NO_REPARSE_FIX = (
    "Keep the decoded policy in the cache and return it (or a read-only view): parse once "
    "per miss, never per hit (the seed's 10-15% CPU in JSON parsing)."
)

P1_2_COUNTERS_NONE = (
    "the target declares no hit/miss counters (P1Target.cache_counters): nothing to compare"
)
P1_2_COUNTERS_SUMMARY = (
    "store counted {hits} hits, {misses} misses; the harness {seen_hits} and {seen_misses}"
)
P1_2_COUNTERS_DISAGREE = (
    "the store's own counters disagree with what the harness counted over {reads} reads: "
    "the store says {hits} hits and {misses} misses, the harness saw {seen_hits} hits and "
    "{seen_misses} misses (a miss: a read that went to Redis)."
)
P1_2_COUNTERS_WORKLOAD = (
    "Workload: {policies} policies read in turn on one instance; the clock moved past the "
    "TTL every {expire_every} reads and a policy was updated every {update_every}; "
    "tolerance {tolerance} read(s)."
)
P1_2_COUNTERS_FIX = (
    "Count a hit only for a read served from the cache and a miss for every read that "
    "goes to storage (expired and invalidated entries included)."
)

P1_2_READ_YOUR_WRITES_SUMMARY = (
    "the writer read each of its {rounds} updates as soon as update_policy returned"
)
P1_2_READ_YOUR_WRITES_STALE = (
    "instance 0 served {got!r} right after its own update_policy({name!r}, {expected!r}) "
    "returned: the writer kept its old value."
)
P1_2_READ_YOUR_WRITES_HELD = (
    "Its own invalidation was held back until after this read: the writer must not depend "
    "on the message coming back over pub/sub."
)
P1_2_READ_YOUR_WRITES_WAITED = (
    "update_policy waited for its own invalidation, which was then let through: the read "
    "came after the writer had processed it."
)
P1_2_READ_YOUR_WRITES_FIX = (
    "In update_policy, drop (or replace) the writer's own cached entry before returning."
)

P1_2_WRITE_THEN_INVALIDATE_SUMMARY = (
    "probed between the writer's PUBLISH and its next command: instance 1 read the new value"
)
P1_2_WRITE_THEN_INVALIDATE_ATOMIC_SUMMARY = (
    "no separate PUBLISH seen (write and invalidation in one script or transaction); "
    "instances converged"
)
P1_2_WRITE_THEN_INVALIDATE_STALE_SUMMARY = (
    "instance 1 refilled the old value between the writer's PUBLISH and its write"
)
P1_2_WRITE_THEN_INVALIDATE_STALE = (
    "the invalidation went out before the new value was stored: instance 1 processed the "
    "writer's invalidation of {name!r}, read storage, got the old value {got!r}, and still "
    "served it after the update returned."
)
P1_2_WRITE_THEN_INVALIDATE_EVIDENCE = (
    "The writer was held after its PUBLISH returned, before its next command; meanwhile "
    "instance 1 read {got!r} with {reads} storage read(s). Expected: {expected!r}."
)
P1_2_WRITE_THEN_INVALIDATE_FIX = (
    "Store the new value first, then publish the invalidation (or do both in one "
    "MULTI/EXEC or script)."
)

P1_2_LINK_RECOVERY_SUMMARY = (
    "instance 1 resubscribed {ms:.0f} ms after its link was cut; invalidation and caching "
    "work again"
)
P1_2_LINK_NOT_RESUBSCRIBED = (
    "after its invalidation link was cut, instance 1 did not subscribe again within "
    "{timeout:g} s: its listener stopped for good, so invalidations no longer reach it."
)
P1_2_LINK_NOT_PROCESSING = (
    "after resubscribing, instance 1 did not process the invalidations sent to it:"
)
P1_2_LINK_STALE = (
    "after resubscribing, instance 1 served {got!r} instead of {expected!r} once an update "
    "on instance 0 had settled."
)
P1_2_LINK_NOT_CACHING = (
    "after resubscribing, instance 1 no longer caches: a second read of {name!r} went to "
    "Redis ({reads} storage read(s))."
)
P1_2_LINK_RECOVERY_FIX = (
    "On a lost link, flush the cache, subscribe again (retrying with backoff) and resume "
    "caching once Redis has confirmed the new subscription."
)

P1_2_GARBAGE_SUMMARY = (
    "the listener survived {count} garbage messages ({kinds}) and applied the next invalidation"
)
#: What each injected garbage message is, as the verdicts name it.
P1_2_GARBAGE_KINDS = {
    "utf8": "not UTF-8",
    "empty": "empty",
    "huge": "huge (1 MiB)",
    "json": "not a name (a JSON object)",
    "control": "not a name (control characters)",
}
P1_2_GARBAGE_DIED = (
    "instance 1's listener stopped at a garbage message on the invalidation channel, "
    "{kind} ({size} bytes): it never processed the genuine invalidation that followed."
)
P1_2_GARBAGE_DIED_AFTER = (
    "instance 1's listener stopped after the garbage messages: it never processed the "
    "genuine invalidation that followed."
)
P1_2_GARBAGE_NOT_APPLIED = (
    "after the garbage messages, instance 1 served {got!r} instead of {expected!r} once the "
    "genuine invalidation that followed had settled."
)
P1_2_GARBAGE_INJECTED = "Injected on instance 1, in this order: {kinds}."
P1_2_GARBAGE_FIX = (
    "Treat a message that is not a policy name as a reason to flush (or ignore it), log it, "
    "and keep listening: one bad message must not end the listener."
)

# --- P1-3 and deploy.health: nothing vacuous, advice from evidence (issue 12) ---

# P1-3.files-removed: nothing looked at.
P1_3_NO_REMOVED_PATHS = (
    "the target names no removed v2 files (V2Rules.removed_paths is empty), so nothing was checked."
)
P1_3_NO_REMOVED_PATHS_FIX = (
    "List the files the seed deletes, where they lived: v2_protocol.py, v2_consensus.py, "
    "v2_node_discovery.py, v2_heartbeat.py."
)
P1_3_REMOVED_HOMELESS = (
    "none of the directories the removed v2 files lived in exists, so their absence proves nothing:"
)
P1_3_REMOVED_HOMELESS_FIX = (
    "Give removed_paths where the files lived, as absolute paths "
    "(for example Path(__file__).parent / 'federation' / 'v2_protocol.py')."
)

# P1-3.no-direct-imports: nothing looked at.
P1_3_NOTHING_SCANNED = "no Python file was found under the source roots, so no import was checked:"
P1_3_NOTHING_SCANNED_FIX = "Set V2Rules.source_roots to the package directories of the backend."
P1_3_NO_V2_MODULES = (
    "the target names no v2 modules (V2Rules.v2_modules is empty), so no import "
    "could count as a v2 import."
)
P1_3_NO_V2_MODULES_FIX = (
    "List the deprecated modules still present, for example "
    "'backend.federation.federated_engine_v2'."
)
P1_3_V2_MODULES_NOT_FOUND = (
    "none of the v2 modules is among the {files} modules under the source roots, so the "
    "scan could not recognise an import of them:"
)
P1_3_V2_MODULES_NOT_FOUND_FIX = (
    "Check the dotted names in V2Rules.v2_modules against the files under source_roots."
)

# P1-3.deprecation-warning: the advice follows where the warning pointed.
P1_3_STACKLEVEL_LOW_FIX = (
    "Pass stacklevel={needed} to warnings.warn so users see their own line: it is called "
    "{depth} frame(s) below the line constructing {engine}; this warning used "
    "stacklevel={used}, which names a line inside {engine}'s code."
)
P1_3_STACKLEVEL_HIGH_FIX = (
    "Pass stacklevel={needed} to warnings.warn: this warning used stacklevel={used}, which "
    "names a line {extra} frame(s) above the one constructing {engine}."
)
P1_3_WARNS_IN_OWN_MODULE_FIX = (
    "It points into {engine}'s own module ({module}), not at a frame of this construction: "
    "make the warning name the caller's line."
)
P1_3_WARNS_OFF_PATH_FIX = (
    "It points neither into {engine}'s own module nor at a frame between warnings.warn and "
    "the constructing line: make the warning name the caller's line."
)
P1_3_WARNS_NEEDED = "Counted from the warnings.warn call, stacklevel={needed} names the caller."

# P1-3.bridge-only-at-runtime: a watch over the whole run.
P1_3_BRIDGE_HELD_SUMMARY = (
    "0 v2 engine constructions in {seconds:.1f} s watched; the bridge holds {held} "
    "built before the run (at import)"
)
P1_3_RUNTIME_NOTHING_SEEN_SUMMARY = "no construction of {engine} seen: nothing checked"
P1_3_RUNTIME_NOTHING_SEEN = (
    "no construction of {engine} was seen while the harness watched the run for "
    "{seconds:.1f} s ({driven}), and no bridge module holds one: the check observed nothing."
)
P1_3_RUNTIME_EXPECTED = (
    "Expected: the bridge ({bridges}) constructing {spec} (P1Target.v2.engine_class)."
)
P1_3_RUNTIME_NOTHING_SEEN_FIX = (
    "Is engine_class the class the bridge builds? Name that class ('module:Class'); if the "
    "bridge builds its engine only on demand, make relay_probe run the bridge."
)
P1_3_RUNTIME_DRIVEN_ACTIONS = "{count} target action(s)"
P1_3_RUNTIME_DRIVEN_PROBE = "the relay probe"
P1_3_RUNTIME_DRIVEN_HEALTH = "the health check"
P1_3_RUNTIME_DRIVEN_GRACE = "{grace:g} s grace"

# P1-3.bridge-relays: a failing v2 node among the healthy ones.
P1_3_RELAY_FAILING_NODE_ERROR = "v2 node down (the failing node of the quantum-p1 relay probe)"
P1_3_RELAY_STOPPED = (
    "the bridge stopped relaying at a failing v2 node: with a node that raises registered "
    "first, {reached} of {nodes} healthy node(s) got the v3 event:"
)
P1_3_RELAY_FAILING_CALLED = (
    "  the failing node was called {calls} time(s) and raised ConnectionError each time"
)
P1_3_RELAY_STOPPED_FIX = (
    "Deliver to each v2 node on its own (catch each node's error, or gather with "
    "return_exceptions=True), so one failing node never keeps the others from the event."
)
P1_3_RELAY_FAILING_NEVER_CALLED = (
    "the relay probe was given a failing v2 node but the bridge never called it, so whether "
    "one failing node stops the relay was not checked: register it as a v2 node (before the "
    "healthy ones) in relay_probe"
)
P1_3_RELAY_PAST_FAILING_SUMMARY = (
    "relayed to {reached}/{nodes} v2 node(s), once each, past a failing node"
)
P1_3_RELAY_NO_FAILING_SUMMARY = (
    "relayed to {reached}/{nodes} v2 node(s), once each; a failing node was not probed "
    "(relay_probe takes no third argument)"
)

# deploy.health: the health check against a Redis that is down.
DEPLOY_HEALTH_OK_WHILE_DOWN = (
    "the health check reports 'ok' while Redis is unreachable: given a client to a Redis "
    "that closes every connection at once, it reported:"
)
DEPLOY_HEALTH_NEVER_CONNECTED = (
    "It never connected to the Redis client it was given, so it checks no Redis."
)
DEPLOY_HEALTH_CONNECTED = (
    "It connected {connections} time(s); every connection was closed before any answer."
)
DEPLOY_HEALTH_OK_WHILE_DOWN_FIX = (
    "Ping the Redis the backend depends on and report any status but 'ok' when it does not "
    "answer; the adapter must hand the health check the client the harness gives it."
)

# --- P1-3 and deploy.health (issue 12), continued ---
P1_3_FILES_UNCHECKED_SUMMARY = "no legacy v2 file looked for"
P1_3_IMPORTS_UNCHECKED_SUMMARY = "{files} files scanned, no v2 import recognisable"
P1_3_NO_DOCS = (
    "the target names no architecture docs (V2Rules.docs is empty), so no notice was checked."
)
P1_3_NO_DOC_NOTICE = (
    "the target names no notice phrases (V2Rules.doc_notice is empty), so any document would pass."
)
P1_3_DOCS_UNCHECKED_SUMMARY = "no doc checked"
P1_3_NO_DOCS_FIX = (
    "List the docs the seed updates (AI_TRADING_ARCHITECTURE.md, "
    "ARCHITECTURE_V2_INTEGRATION_COMPLETE.md, AI_OS_INTEGRATION_SUMMARY.md) and the phrases "
    "of the notice ('Current: Federation v3', 'Deprecated: Federation v2')."
)
V2_CONSTRUCTION_TIMES = "{construction} ({count} times)"
DEPLOY_HEALTH_OK_WHILE_DOWN_SUMMARY = "health status 'ok', even with Redis down"

# --- deadlines and failed vs error (the acceptance run) ---
#: A criterion's call into the target did not return within its deadline (a verdict).
DEADLINE_DID_NOT_RETURN = (
    "a call into the backend did not return: {function} was still running when the "
    "criterion's deadline of {seconds:g} s ran out."
)
#: The harness's own shorter wait gave up while a target call was stuck (a verdict).
DEADLINE_HARNESS_GAVE_UP = (
    "a call into the backend did not return: {function} was stuck when the harness gave up waiting:"
)
DEADLINE_CALL = "  - the call: {call}"
DEADLINE_AT = "  - stuck at: {at}"
DEADLINE_BLOCKED_IN = "{at}, blocked in {inner}"
DEADLINE_HARNESS = "  - the harness was in: {path}"
DEADLINE_ALSO = "  - other backend calls that had not returned either:"
DEADLINE_FIX = (
    "Every call into the backend must return: give each wait a timeout, and never block the "
    "event loop with a sync call. If the backend is only slow, give it more time with {option}."
)
DEADLINE_AFTER_VERDICT = "Before that, the check itself had failed:"
#: The checklist line of a criterion that ran out of time in a target call.
DEADLINE_SUMMARY = "did not finish: {function} did not return"
#: The deadline ran out with no target code running: the harness is stuck (an error).
DEADLINE_NO_TARGET_CODE = (
    "{name} did not finish within its deadline of {seconds:g} s, and no backend code was "
    "running in this process: the harness was waiting (for a child process hosting the "
    "backend, or for itself) in the places below. Raise {option} if this machine is slow; "
    "if it is not, please report it."
)
#: An error's message: the exception, then where it was raised.
ACCEPTANCE_ERROR = "the check could not run: {type}: {error}"
ACCEPTANCE_ERROR_IN_TARGET = "  raised in the backend at {site}"
ACCEPTANCE_ERROR_IN_HARNESS = "  raised in the harness at {site}"
ACCEPTANCE_ERROR_AT_SETUP = "the check could not be set up: {type}: {error}"
ACCEPTANCE_ERROR_AT_TEARDOWN = "cleaning up after the check failed: {type}: {error}"
#: A target import that ended the interpreter (``sys.exit()``) or raised a BaseException.
SPEC_MODULE_EXITED = (
    "importing module {module!r} raised {type}: {error} (it must not end the process)"
)

# --- stateful search (issue 12 §6): timing, interleavings, no-verdict causes ---
MACHINE_NOT_READ_YOUR_WRITES = (
    "read-your-writes broken: instance {instance} read {name!r} = v{version} after its own "
    "update to v{own} had returned"
)
MACHINE_CALL = "instance {instance}: {call}"
MACHINE_NO_CALL = "no store call (the machine's own wait)"
MACHINE_AT_SETUP = "setup"
MACHINE_CALL_HUNG = "store call did not return: {calls} did not return within {timeout:g}s ({step})"
MACHINE_SETUP_TIMED_OUT = (
    "setting up the stores did not finish within {timeout:g}s: {calls} did not return"
)
MACHINE_FACTORY_RAISED = "the store factory raised {type}: {error} (building instance {instance})"
MACHINE_STORE_RAISED = "{call} raised {type}: {error} (at {step}): the search cannot go on"
MACHINE_SETUP_UNSETTLED = "the stores did not settle after initialize(): {detail}"
MACHINE_RECONNECT_HINT = (
    " (after a link step the wait is reconnect_timeout: a store that backs off before "
    "resubscribing needs a longer one)"
)

# --- arguments of the plugin's own functions ---------------------------------

PERCENTILE_OF_NOTHING = "percentile of no values"
PERCENTILE_OUT_OF_RANGE = "q must be within [0, 100], got {q!r}"
LATENCY_BUDGET_TYPE = (
    "a latency budget is a duration string, a timedelta or int nanoseconds, got {kind}"
)
LATENCY_BUDGET_NOT_POSITIVE = "a latency budget must be positive, got {budget}"
LATENCY_BUDGET_SOURCE = "latency budget"
LATENCY_NO_SAMPLES = "no latency samples to summarise"
LATENCY_UNKNOWN_PERCENTILE = "percentile must be one of {choices}, got {which!r}"
LATENCY_BAD_COUNT = "{label} must be an int >= {least}, got {value!r}"
CLOCK_BAD_START = "start must be a finite number of seconds, got {start!r}"
CLOCK_BACKWARDS = (
    "a monotonic clock only moves forward: advance() needs a finite number of seconds >= 0, "
    "got {seconds!r}"
)
EVENTS_ORDER_NEEDS_A_NAME = "assert_order() needs at least one event name"
EVENTS_NAME_NOT_A_STR = "name must be a str, got {kind}"
REDIS_SERVER_INSTALL_HINT = (
    "To run against a real Redis, install the server (e.g. `apt-get install redis-server`) "
    "or pass the path of a redis-server binary; or use the embedded fake with --p1-redis=fake."
)
REDIS_SERVER_CANNOT_RUN = "cannot run {binary!r}: {error}"
REDIS_SERVER_DID_NOT_START = "redis-server on port {port} {what}; its log ends with:\n{tail}"
REDIS_SERVER_EXITED = "exited"
REDIS_SERVER_NO_PING = "did not answer PING within {timeout}s"
REDIS_SERVER_NOT_FOUND = "cannot start a private Redis: {where}."
REDIS_SERVER_NOT_EXECUTABLE = "{binary!r} is not an executable"
REDIS_SERVER_NOT_ON_PATH = "{binary!r} is not on PATH"
REDIS_NOT_OWNED = "refusing to flush a Redis the harness does not own: {source}"
MACHINE_BAD_TIMEOUT = "{name} must be a finite number of seconds > 0, got {value!r}"
# What the search found, by the kind of the failure (the {what} of P1_2_STALE_READ_FOUND).
P1_2_SEARCH_FOUND = {
    "stale": "a stale read",
    "monotonic": "a non-monotonic read",
    "ttl": "a value stale past the TTL",
    "link-loss": "a value cached across a lost invalidation link",
    "impossible": "a value no update wrote",
    "read-your-writes": "a writer serving its old value after its own update",
    "unsettled": "a store instance that stopped reacting",
    "hung": "a store call that never returned",
}
P1_2_SEARCH_FOUND_OTHER = "a broken property"
P1_2_STORE_STOPPED_SUMMARY = "{what} after {scenarios} generated scenarios (seed {seed})"
P1_2_STORE_STOPPED = (
    "the property-based search found {what}, in scenario {scenarios} (seed {seed}):"
)
P1_2_STORE_STOPPED_FIX = (
    "A listener must handle each message and come back for the next, and every call must "
    "return: the harness waits settle_timeout after a step and reconnect_timeout after a "
    "lost link (real seconds, see machine_for)."
)
EXPECT_SCENARIOS = "an integer >= 1"
MACHINE_FATE_EARLY = "{count} delivered before the update returned (it may precede the write)"
MACHINE_PART_DIED = "the process searching part of the scenarios (pid {pid}) ended without a result"
# --- the wire observer (issue 13): RESP parsing and the observing proxy ---
WIRE_RESP_BAD_TYPE = "unknown RESP type byte {byte!r}"
WIRE_RESP_BAD_LENGTH = "bad RESP length {text!r} after {kind!r}"
WIRE_RESP_BAD_LINE = "bad RESP {kind!r} value {text!r}"
WIRE_RESP_TOO_LONG = "RESP {what} of {size} exceeds the limit of {limit}"
WIRE_RESP_TOO_DEEP = "RESP aggregates nested deeper than {limit}"
WIRE_RESP_NO_CRLF = "RESP bulk string of {size} bytes not followed by CRLF"
WIRE_RESP_NOT_A_COMMAND = "a client command must be an array of bulk strings, not {kind!r}"
WIRE_RESP_STREAMED = "streamed RESP3 {kind!r} values are not supported"
WIRE_PROTOCOL_ERROR_REPLY = "ERR Protocol error: {reason}"
WIRE_FAULT = "{label} connection {connection}: {side} sent bytes that are not RESP: {reason} (at byte {offset}); the connection was closed"
WIRE_UPSTREAM_UNREACHABLE = (
    "{label}: cannot reach Redis at {host}:{port} for connection {connection}: {error}"
)
WIRE_NOT_STARTED = "{label}: the wire proxy is not started (call start() first)"
WIRE_CLOSED = "{label}: the wire proxy is closed"
WIRE_TAKE_NEGATIVE = "cannot {verb} {n} pushes: n must be >= 0"
WIRE_TAKE_TOO_MANY = "{label}: cannot {verb} {n} pushes, only {held} held"
WIRE_NO_CONNECTION = "{label}: no open connection {what} to inject into"
WIRE_WAIT_PENDING_TIMED_OUT = (
    "{label}: {held} pushes held after {timeout}s, waited for {count}{hint}"
)
WIRE_WAIT_PENDING_NOT_HOLDING = " (pushes are not held: call hold() first)"
WIRE_WAIT_REPLIES_TIMED_OUT = (
    "{label}: {pending} {what} replies held after {timeout}s, waited for {count}"
)
WIRE_WAIT_SUBSCRIBED_TIMED_OUT = (
    "{label}: no open connection {what} after {timeout}s (connections: {state})"
)
WIRE_WAIT_DELIVERED_TIMED_OUT = (
    "{label}: no push matching {match!r} forwarded after {timeout}s ({count} forwarded)"
)
WIRE_WAIT_CONNECTIONS_TIMED_OUT = (
    "{label}: {open} connections open after {timeout}s, waited for {count}"
)
WIRE_BARRIER_TIMED_OUT = (
    "{label}: the barrier on connection {connection} was not answered within {timeout}s"
)
WIRE_BARRIER_IN_TRANSACTION = (
    "{label}: connection {connection} is inside MULTI: a barrier would be queued, not answered"
)
WIRE_SUBSCRIBED_TO = "subscribed to {channel!r}"
WIRE_TRACKING = "receiving tracking invalidations"

# -- the user's Redis and secrets (issue 14: namespace, owned database, redaction) -------
REDIS_NAMESPACE_UNAVAILABLE = (
    "quantum-p1: found no namespace free on {source}: each of {attempts} random tokens "
    "tried is contained in some key name there."
)
#: After the redacted URL in the header and reports, with ``--p1-redis-owned``.
HEADER_REDIS_OWNED = " (database owned: emptied before each test)"

# --- adapter shapes (issue 13, items 4-5): what the adapter absorbs -----------------------
TARGET_BAD_TIMING = "Timing.{name} must be a finite number of seconds > 0, got {value!r}"
V2_IGNORE_IMPORT_SHAPE = (
    "V2Rules.ignore_imports entry {expression!r} is not of the form 'importer -> imported' "
    "(import-linter's syntax)"
)
V2_IGNORE_IMPORT_SIDE = (
    "V2Rules.ignore_imports entry {expression!r}: the {side} {module!r} is not a dotted module "
    "name; each part is a name, '*' (one module name) or '**' (one or more), never mixed "
    "('foo*' is invalid)"
)
V2_SCAN_REEXPORT_HINT = (
    "{package} is the package of {module}: if the whole package is v2 (its __init__ "
    "re-exports the engine), name the package {package!r} in V2Rules.v2_modules."
)
P1_3_IMPORTS_IGNORED = "; {ignored} allowed by {entries} ignore_imports entr(ies)"
P1_3_IMPORTS_IGNORES_UNMATCHED = " (matching no import: {unmatched})"
P1_3_ENGINE_FACTORY_RAISED = (
    "V2Rules.engine_factory {factory} raised {type} building the engine: {error}. The harness "
    "could not construct it to look at its warning."
)
P1_3_ENGINE_CONSTRUCTION_RAISED = (
    "{engine}() raised {type}: {error}. The harness constructs the engine with no arguments; "
    "if it needs some, give V2Rules.engine_factory (e.g. engine_factory=lambda: "
    "{engine}(config)): the warning is then judged at the factory's line."
)
P1_3_ENGINE_FACTORY_DID_NOT_CONSTRUCT = (
    "V2Rules.engine_factory {factory} returned without calling {engine}: the harness saw no "
    "construction to judge. The factory must construct the engine (not return a cached one)."
)
P1_3_DEPRECATION_THROUGH_FACTORY = " (built by V2Rules.engine_factory, at {file}:{line})"
P1_1_CATALOGUE_FROM_ADAPTER = " (the adapter's list: the emitter keeps no catalogue)"
P1_1_MONITOR_READER_RAISED = (
    "P1Target.monitor_record {reader} raised {type} reading a record of {logger!r} "
    "({message!r}): {error}"
)
P1_2_LINK_RECOVERY_WAIT = " (waited up to {timeout:g} s: P1Target.timing.reconnect_timeout)"
#: Teardown of ``p1_redis`` after the test closed a loop with ``loop.close()`` alone.
REDIS_CONNECTIONS_LEFT_OPEN = (
    "p1_redis: {count} connection(s) were still open on an event loop the test closed without "
    "shutting it down (loop.close() without loop.shutdown_asyncgens()); nothing can close them "
    "now. Run the loop with asyncio.run() or asyncio.Runner, or await the client's aclose() "
    "before closing the loop."
)
#: The second header line of a --p1 run whose target declares facts (``P1Target.extra``).
HEADER_EXTRA = "quantum-p1: target facts: {facts}"
P1_1_LOGGED_UNREAD = (
    "{count} record(s) on {logger!r} were read as no event by P1Target.monitor_record "
    "{reader}, e.g. {example!r}"
)
#: The stale-read search stopped: its run's namespace on the user's Redis is being removed.
MACHINE_NAMESPACE_RETIRED = (
    "the run that owns the policy names {prefix!r} is over (interrupted or abandoned): "
    "the search stopped so that nothing more is written to the Redis"
)

# --- stale-read search: a scenario Hypothesis could not replay (lead) ---
MACHINE_NOT_REPLAYABLE = (
    "the stale-read search could not replay a scenario the same way ({type}: {error}): the steps it "
    "could take depended on timing the harness does not control (a subscription still coming back, "
    "a message still in flight), so the scenario says nothing about the store. If the store "
    "reconnects or settles slowly, declare it: P1Target(timing=Timing(settle_timeout=..., "
    "reconnect_timeout=...))."
)

# Harness settling by barrier (issue 13, item 2): nothing published on the store's channel.
MEMBER_NOT_SETTLED = "{label}: not settled after {timeout:g}s: {where}"
WHERE_BARRIER_NOT_BACK = (
    "the harness's barrier never came back on its subscription connection (subscribed to "
    "{channels}): its connection stopped delivering"
)
WHERE_BACKLOG_HELD = (
    "{count} message(s) it received are held by hold(): call release() or deliver()"
)
WHERE_BACKLOG_NOT_FINISHED = (
    "took the message {data!r} and never came back for the next (listener stuck, or it crashed)"
)
WHERE_BACKLOG_NOT_TAKEN = (
    "{count} message(s) it received were never taken from its subscription: its listener "
    "stopped reading"
)
WHERE_BACKLOG_DONE = "processed everything it received (it settled as the wait ended)"
NOT_SETTLED_BARRIER = (
    "settle() timed out after {timeout:g}s: {count} of {total} instance(s) did not process "
    "every invalidation they received on {channel!r} before the harness's barrier"
)
NOT_SETTLED_BARRIER_TUNE = (
    "The barrier (a token on a harness-only channel of each instance's own pubsub connection) "
    "comes back after every message published earlier, so these instances may still serve "
    "stale values. A longer settle(timeout=...) helps only if their listeners are merely slow."
)

# --- pytest-benchmark entries, progress, option misuse (issue 16: benchmark helper) ---
#: pytest-benchmark group of the ``p1_latency`` fixture's measurements.
BENCHMARK_GROUP_LATENCY = "p1_latency"
#: pytest-benchmark group of the acceptance run's per-call latency (``P1-2.cached-read``).
BENCHMARK_GROUP_ACCEPTANCE = "quantum-p1"

# --- the HTML page of the acceptance run (issue 16: the report) ---
#: The first group of the page's checklist: every criterion that failed or erred, before the rest.
ACCEPTANCE_PAGE_NOT_PASSING = "Failed and in error"
#: After the tally in the page's header: links to each criterion not passing.
ACCEPTANCE_PAGE_SEE = "see"
#: A failed or erred row without figures: the check stopped before it measured anything.
ACCEPTANCE_PAGE_NOTHING_MEASURED = "nothing measured: the check stopped before its figures"
#: The measured p99 of cached reads, marked on the latency chart against the budget line.
ACCEPTANCE_CHART_LATENCY_P99 = "p99 {p99}"
#: The x axis of the propagation chart when its bars are labelled by instance number alone.
ACCEPTANCE_CHART_PROPAGATION_X = "instance"
#: A bar of the propagation chart for an instance that processed no invalidation.
ACCEPTANCE_CHART_PROPAGATION_MISSING = "none"
#: In place of a chart whose criterion stopped before it recorded the chart's data.
ACCEPTANCE_CHART_NOT_MEASURED = (
    "Not drawn: {id} stopped ({outcome}) before it recorded what this chart shows; see its message."
)
#: Live progress of a long acceptance criterion (terminal only; see ``_acceptance.drive.ProgressLine``).
PROGRESS_RUNNING = "quantum-p1: {name} running{scenarios}, {elapsed:.0f} s"
PROGRESS_DONE = "quantum-p1: {name} finished{scenarios} in {elapsed:.1f} s"
PROGRESS_SCENARIOS = ", {done} scenarios"
PROGRESS_SCENARIOS_OF = ", {done} of {planned} scenarios"
#: The most store instances --p1-instances takes (each is a store, a client and a listener).
EXPECT_INSTANCES_BOUNDED = "an integer from 2 to {most}"
#: An option given for a run that does not use it (a PytestConfigWarning).
UNUSED_REPORT_WITHOUT_RUN = (
    "{option} is ignored without {run}: only the acceptance run writes a report "
    "(add {run}, or drop {option})"
)
UNUSED_REDIS_BINARY_WITHOUT_SERVER = (
    "{option} is ignored without {redis}=server: only then does the harness start a "
    "redis-server (add {redis}=server, or drop {option})"
)
NOT_SUBSCRIBED_BARRIER_TUNE = (
    "The stores' invalidations travel on that channel (P1Target.invalidation_channel); the "
    "harness publishes nothing there itself."
)

# -- the URL form of store factories and the wire member (issue 13, lead) -----------------
FROM_URL_NOT_CALLABLE = "from_url() takes a callable (url, clock) -> store, got a {got}"
WIRE_UPSTREAM_TLS = (
    "stores of the URL form are observed through a plain-TCP proxy of the harness's own; "
    "{url} uses TLS: point --p1-redis at a non-TLS Redis for the acceptance run"
)
WIRE_FAKE_NEEDS = (
    "stores of the URL form on fakeredis need fakeredis >= {needed} (its TCP server with "
    "pub/sub pushes and RESP3); {found} is installed: upgrade it, or use --p1-redis=server"
)

# --- Redis Cluster: the private cluster and --p1-redis=cluster (issue 15, harness side) ---
REDIS_CLUSTER_NOT_READY = (
    "the private Redis Cluster did not form within {timeout}s (every node cluster_state:ok, "
    "every replica in sync)"
)
REDIS_CLUSTER_BOOTSTRAP_FAILED = "could not bootstrap the private Redis Cluster: {error}"
REDIS_CLUSTER_NODE_NOT_BACK = (
    "cluster node 127.0.0.1:{port} did not see the cluster ok after restart"
)
REDIS_CLUSTER_NO_REPLICA = "master 127.0.0.1:{port} has no running replica to fail over to"
REDIS_CLUSTER_FAILOVER_TIMEOUT = (
    "CLUSTER FAILOVER of master 127.0.0.1:{port} to its replica 127.0.0.1:{replica} did not "
    "finish within {timeout}s"
)
REDIS_CLUSTER_ALL_DOWN = "every node of the private Redis Cluster is down"
REDIS_CLUSTER_SHAPE = (
    "a cluster needs at least 1 master and 0 or more replicas each, not "
    "masters={masters}, replicas_per_master={replicas}"
)
WIRE_MEMBER_NOT_STARTED = (
    "{label}'s store is built when the cluster starts it (its proxy's URL exists then)"
)
WIRE_WHERE_HELD = "{count} push(es) held at the proxy, not forwarded"
WIRE_WHERE_NOT_SUBSCRIBED = "no open connection of the store is subscribed to {target}"
WIRE_WHERE_FORWARDED = (
    "the barrier did not come back: {count} push(es) forwarded so far "
    "(what the store did with them is not visible on the wire)"
)
WIRE_STATE_NO_CONNECTION = "no open connection"
WIRE_STATE_LISTENING = "{count} open connection(s) subscribed to {target}"
WIRE_STATE_NOT_LISTENING = "{count} open connection(s), none subscribed to {target}"
CLUSTER_INSTANCE_NOT_WIRE = (
    "{label} uses the harness's client (a store of the client form): it has no wire proxy"
)
REDIS_CLUSTER_REDIS_PY_TOO_OLD = (
    "a Redis Cluster needs redis-py >= {needed} (its asyncio RedisCluster has pubsub() from "
    "{needed}); redis-py {installed} is installed: pip install 'redis>={needed}'"
)
NOT_CONVERGED_TUNE_WIRE = (
    "settle() had returned, so every invalidation Redis sent was forwarded to the store, "
    "and each instance was read again for {serve:.1f} s: these values are not in flight; "
    "the store kept or re-cached them. If the store is meant to converge by TTL only, "
    "advance the injected clock past it before asserting."
)
EXPECT_REDIS_CLUSTER = (
    "'cluster' (a private Redis Cluster) or a Redis Cluster node's URL, "
    "redis+cluster://host:port or rediss+cluster://host:port (database 0 only)"
)
HEADER_REDIS_CLUSTER_PRIVATE = (
    "cluster (private, {nodes} nodes: {masters} masters + {replicas} replicas)"
)
HEADER_REDIS_CLUSTER_URL = "cluster {url}{nodes}"
HEADER_REDIS_CLUSTER_NODES = " ({nodes} nodes)"
HEADER_REDIS_CLUSTER_OWNED = " (owned: every master emptied before each test)"
#: --p1-redis=redis://... answered by a cluster node: keys on other nodes would read as redirects.
REDIS_URL_IS_CLUSTER_NODE = (
    "{source}: {url} is a node of a Redis Cluster (INFO cluster: cluster_enabled:1). A plain "
    "client on one node sees only its slots: every other key is a MOVED redirect. Name the "
    "cluster instead: {option}={suggestion}"
)
#: --p1-redis=redis+cluster://... answered by a server that is not in cluster mode.
REDIS_CLUSTER_URL_NOT_CLUSTER = (
    "{source}: {url} is not a Redis Cluster node (INFO cluster: cluster_enabled:0). For a "
    "single server use {option}={suggestion}"
)
REDIS_CLUSTER_UNAVAILABLE = (
    "quantum-p1: --p1-redis=cluster needs a private Redis Cluster (6 redis-server processes): "
    "{error}"
)
#: A pytest header line for a redis+cluster:// URL: what its node said.
HEADER_REDIS_CLUSTER_SEEN = "quantum-p1: redis cluster of {nodes} nodes ({masters} masters)"

# --- the state machine on the wire (issue 13, helper D): URL-form stores behind proxies ---
MACHINE_WIRE_WHERE = (
    "no open connection of it is subscribed to {target} again ({held} push(es) held at its "
    "proxy; on the wire only its connections are visible, not its tasks)"
)
MACHINE_WIRE_NO_TCP = (
    "the stores' Redis is reached through a Unix socket ({path}): a store of the URL form is "
    "given a proxy's TCP address, so the machine needs a Redis on TCP (give redis_url=...)"
)
MACHINE_WIRE_SERVED = (
    "  judged on the wire: what Redis sent this instance was forwarded (or held, as above), "
    "then it was read again for {seconds:g}s (settle_timeout) and kept serving this; the "
    "wire shows what a store was sent and what it serves, not what it did with a message"
)

# --- stores that keep time themselves (issue 13 item 3, helper E): P1Target.real_time ---
TARGET_REAL_TIME_TTL = (
    "P1Target.real_time is set, so policy_ttl is in real seconds, and it is {ttl!r}: it must be "
    "> 0 and at most {maximum:g} s, because every TTL the checks wait out (expiry, cold reads, "
    "counters, the hit-rate run over 30 TTLs) is waited for real. Give the store a short TTL "
    "for the run, e.g. read it from an environment variable in the adapter "
    "(policy_ttl=float(os.environ.get('POLICY_TTL_S', '0.5')), the store built with it)."
)
#: The wording of a time-driven summary, appended where time was real.
REAL_TIME_NOTE = " (real time: the store keeps its own clock)"
P1_2_HIT_RATE_REAL_TIME_SUMMARY = (
    "hit rate {hit_rate:.1%} over {periods:.0f} TTL periods in real time ({wall_s:.1f} s; "
    "{reads} reads, {storage_reads} from storage)"
)
P1_2_HIT_RATE_REAL_TIME_TOO_LOW = (
    "hit rate {hit_rate:.1%} is not above {minimum:.0%} over {periods:.0f} TTL periods in real "
    "time ({wall_s:.1f} s, the store keeping its own clock): {storage_reads} of {reads} reads "
    "went to Redis (counted by the harness)."
)
P1_2_HIT_RATE_REAL_TIME_WORKLOAD = (
    "Workload: {minutes:g} min of {policies} policies, {reads_per_s:g} reads/s and "
    "{updates_per_min:g} updates/min over {instances} instances, run in {planned_s:g} s of "
    "real time: every read and update made, while {periods:.0f} TTLs of {ttl:g} s passed."
)
P1_2_TTL_REAL_TIME_SLOW = (
    "the TTL could not be checked in real time: the read meant for half the TTL came "
    "{elapsed:.3f} s after the entry was cached, past the whole TTL of {ttl:g} s (the machine "
    "or the store was too slow between the two reads). Raise policy_ttl (at most {maximum:g} s)."
)

# -- P1-2 on a Redis Cluster (_acceptance/p1_2_cluster.py) ----------------------------------
P1_2_CLUSTER_NOT_OURS = (
    "needs the harness's own cluster (--p1-redis=cluster): on a cluster given by URL the "
    "harness may not fail over or kill nodes"
)
P1_2_CLUSTER_NOT_CONVERGED = "on the Redis Cluster, {where}, not every instance converged:"
P1_2_CLUSTER_WHERE_SHARDS = "after updates whose keys span the masters"
P1_2_CLUSTER_WHERE_FAILOVER = "after a failover of every master under a steady update stream"
P1_2_CLUSTER_WHERE_NODE_LOSS = "after the node holding the subscriptions died"
P1_2_CLUSTER_FIX = (
    "Publish every invalidation with classic PUBLISH (the cluster bus carries it to every "
    "node), and on a lost link drop the cache, ask the cluster for its topology again and "
    "subscribe on a node that answers."
)
P1_2_CLUSTER_SHARDS_SUMMARY = (
    "{instances} instances converged after updates of {names} policies with keys on "
    "{spread} of {masters} masters; propagation p50 {p50:.2f} ms, p99 {p99:.2f} ms"
)
P1_2_CLUSTER_FAILOVER_SUMMARY = (
    "{failovers} failovers (slowest {slowest:.2f} s) under {updates} updates ({refused} refused "
    "during them); no instance served an older value afterwards"
)
P1_2_CLUSTER_NO_SUBSCRIBER = (
    "no cluster node has a subscriber on {channel!r}: the instances do not listen for "
    "invalidations on the cluster"
)
P1_2_CLUSTER_NOT_RESUBSCRIBED = (
    "after node {port}, which held the subscriptions, was killed, not every instance was "
    "subscribed again within {allowed:.2f} s (the cluster's failover took {failover:.2f} s, plus 1 s):"
)
P1_2_CLUSTER_RESUBSCRIBE_FIX = (
    "On a lost link, drop the cache, refresh the cluster topology and subscribe on any node "
    "that answers (not only the slot owner), without waiting for read traffic."
)
P1_2_CLUSTER_KEPT_CACHE = (
    "instance(s) {instances} served their cached copy after node {port}, which held their "
    "subscriptions, died: what was published while they had no link is lost, so the cache "
    "must be dropped on a lost link."
)
P1_2_CLUSTER_NODE_LOSS_SUMMARY = (
    "node {port} (the subscriptions') killed: every instance dropped its cache and was "
    "subscribed again {slowest:.2f} s later (the cluster's failover took {failover:.2f} s)"
)
ACCEPTANCE_CHART_HIT_RATE_X_REAL = "real time (s)"
CLUSTER_INSTANCE_ON_THE_WIRE = (
    "{label} is a store of the URL form, observed on the wire: use cluster.wire(i) "
    "(its proxy) or cluster.controls(i) / cluster.observer(i)"
)
