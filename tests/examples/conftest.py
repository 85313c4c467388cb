"""Fixtures of the worked examples' tests: ``examples/`` importable, and a Redis URL per test.

The examples are not part of the installed distribution (``pip install .``
ships the plugin and ``reference_impl`` only): their packages are imported
from ``examples/``, put on ``sys.path`` here, as a team's own tests would
import its backend from its checkout.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakeredis import TcpFakeServer

#: The folder holding the example backends (``fleet``) and their adapters.
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

if str(EXAMPLES) not in sys.path:
    sys.path.insert(0, str(EXAMPLES))


@pytest.fixture
def fake_redis_url() -> Iterator[str]:
    """A fakeredis server of its own on a free loopback port, for stores that connect by URL."""
    server = TcpFakeServer(("127.0.0.1", 0))
    thread = threading.Thread(target=server.serve_forever, name="fake-redis", daemon=True)
    thread.start()
    try:
        yield f"redis://127.0.0.1:{server.server_address[1]}/0"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(
    params=[
        pytest.param("fake", id="fake"),
        pytest.param("server", id="server", marks=pytest.mark.real_redis),
    ]
)
def redis_url(request: pytest.FixtureRequest) -> str:
    """A Redis URL: fakeredis over TCP, then the session's private redis-server (emptied)."""
    name = "fake_redis_url" if request.param == "fake" else "url"
    url: str = request.getfixturevalue(name)
    return url
