"""The acceptance run (``--p1``): one test item per success criterion of the seed.

Modules, one idea each:

- ``criteria``  the criteria in checklist order (:func:`criteria_for`) and their pytest items
- ``p1_1``      P1-1 events: catalogue, each required event, logged for monitoring
- ``p1_2``      P1-2 cache: cached read, cold vs warm, hit rate, TTL, invalidation, no stale reads
- ``p1_3``      P1-3 federation v2: files removed, no direct imports, warning, bridge, docs
- ``deploy``    the deployment checklist: the health check
- ``verdict``   how a criterion words its failure (``fail``, ``bullets``)
- ``drive``     how a criterion drives the target (``run``, ``probe_name``, ``quiet_v2_warnings``)
- ``record``    :class:`CriterionRecord`, a criterion's verdict and figures as reports read them
- ``hooks``     :class:`AcceptanceHooks`, the hooks of a ``--p1`` run (the plugin registers them)
- ``report``    the terminal checklist, the JSON report, writing both report files
- ``page``      the HTML page and the charts on it
- ``svg``       line and bar charts as inline SVG

**The criterion contract.** A criterion is a function named ``criterion_<name>``
in its task's module (``event_criterion(event)`` makes the one of each required
event). Its arguments are fixtures: the plugin's own (``p1_target``,
``p1_redis_factory``, ``virtual_clock``, ``policy_cluster`` ...), so the
acceptance run and a team's own tests reach the backend the same way, and
``_p1_criterion``, the :class:`CriterionRecord` it fills (figures, the key
figure in words, chart data). It returns ``None`` to pass, fails with
``verdict.fail(...)`` (``pytest.fail(message, pytrace=False)``, the message in
the order *what was found*, *the evidence*, *how to fix it*, *where to read
more*) or skips with ``pytest.skip(reason)`` when the target declares nothing
to check; any other exception is an error of the target or the harness. The
``criterion_`` prefix belongs to criteria alone, so the harness functions they
call (``_v2.check_docs``, ``_stateful.check_no_stale_reads`` ...) are imported
under their own names. :func:`criteria_for` is the table that gives each
criterion its id, task and title; every text a user reads is in ``_messages``
(``ACCEPTANCE_*``, ``P1_1_*``, ``P1_2_*``, ``P1_3_*``, ``DEPLOY_*``).
"""

from __future__ import annotations

from pytest_quantum_p1._acceptance.criteria import Criterion, criteria_for
from pytest_quantum_p1._acceptance.hooks import AcceptanceHooks
from pytest_quantum_p1._acceptance.record import OUTCOMES, CriterionRecord

__all__ = ["OUTCOMES", "AcceptanceHooks", "Criterion", "CriterionRecord", "criteria_for"]
