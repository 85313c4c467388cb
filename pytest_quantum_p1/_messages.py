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
    "See README.md, section 'Pointing the harness at your backend'."
)

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

# --- latency (per call) ------------------------------------------------------

LATENCY_MEASURED = (
    "Measured over {calls} calls, each timed on its own, after {warmup} warm-up calls "
    "(the timer's own cost, {timer}, is in every figure):"
)

# --- P1-3 federation v2 (_v2: scan, guard, files and docs) ---------------------

#: Where the user reads about P1-3 (a README anchor).
V2_READ_MORE = "See README.md, section 'P1-3: federation v2' (README.md#p1-3-federation-v2)."
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
ACCEPTANCE_READ_MORE = "See README.md#the-acceptance-run for what each criterion proves."
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

P1_2_NO_STALE_READS_SUMMARY = "no stale read in {examples} generated scenarios"
P1_2_STALE_READ_FOUND_SUMMARY = "stale read found in {examples} generated scenarios"
P1_2_STALE_READ_FOUND = "the property-based search found a stale read:"
P1_2_STALE_READ_FOUND_FIX = (
    "Drop an entry on each invalidation, flush the cache when the invalidation link is "
    "lost, and never cache a read that raced an invalidation."
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
P1_3_WARNS_ELSEWHERE_FIX = "Pass stacklevel=2 to warnings.warn so users see their own line."

P1_3_BRIDGE_ONLY_SUMMARY = "{constructions} v2 engine constructions, all through the bridge"
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
WHERE_HELD = (
    "the marker is held by hold() with {count} message(s) pending: call release() or deliver()"
)
WHERE_NOT_FINISHED = (
    "took the marker but never came back for the next message (listener stuck, or it crashed)"
)
WHERE_NOT_TAKEN = "has not taken the marker from its subscription: its listener stopped reading"
WHERE_NEVER_RECEIVED = "never received the marker (subscribed to {channels})"
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
NOT_SUBSCRIBED_TUNE = (
    "The harness sends invalidations and settle markers on that channel "
    "(P1Target.invalidation_channel)."
)
NOT_SETTLED = (
    "settle() timed out after {timeout:g}s: {count} of {total} instance(s) did not process "
    "the settle marker {marker!r} published on {channel!r} (PUBLISH reached {receivers} "
    "subscriber(s))"
)
NOT_SETTLED_TUNE = (
    "Every earlier invalidation reaches an instance before the marker, so these "
    "instances may still serve stale values. A longer settle(timeout=...) helps "
    "only if their listeners are merely slow."
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
MACHINE_BUDGET_NOT_POSITIVE = "time_budget_s must be > 0, got {budget!r}"
