"""Redis URLs shown to people: passwords redacted (standard library only, cheap to import).

:class:`RedisURL` carries a URL whose ``str`` and ``repr`` never show its
password; :func:`redact_url` and :func:`redact_text` mask one in a URL or in
free text. Loaded with the plugin's options, so nothing heavier than ``re``.
"""

from __future__ import annotations

import re
from typing import Final
from urllib.parse import parse_qsl, unquote, urlsplit

__all__ = ["RedisURL", "redact_text", "redact_url", "redact_value"]

# A userinfo with a password: everything up to the last "@" before the host,
# provided it holds no "?" or "#" (then the "@" belongs to the query or fragment).
_USERINFO: Final = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/?#]*):[^?#]*@")
_QUERY_PASSWORD: Final = re.compile(r"(?P<key>[?&]password=)[^&#]*", re.IGNORECASE)


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, safe to print.

    ``redis://user:secret@h:1/0`` becomes ``redis://user:***@h:1/0``,
    ``redis://:secret@h`` becomes ``redis://:***@h``, and a ``password=``
    query parameter is masked too. A URL without credentials is unchanged.
    """
    redacted = _USERINFO.sub(r"\g<head>:***@", url, count=1)
    return _QUERY_PASSWORD.sub(r"\g<key>***", redacted)


# Any ``scheme://user:password@`` in free text, up to the last "@" of the
# token: a value that failed to parse (an unencoded "#" or "?" in the password,
# a wrong scheme) is masked as a whole, where :func:`redact_url` would stop early.
_TEXT_USERINFO: Final = re.compile(
    r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:@/\s'\"]*):[^\s'\"]*@(?=[^\s'\"@]*(?:[\s'\"]|$))"
)


def redact_text(text: str) -> str:
    """``text`` with the password of every URL in it replaced by ``***``, safe to print.

    For messages that quote a value the user gave (a usage error): unlike
    :func:`redact_url`, it finds URLs anywhere in the text and masks a
    userinfo that does not parse (``redis://u:pa#ss@h`` becomes ``redis://u:***@h``).
    """
    return _QUERY_PASSWORD.sub(r"\g<key>***", _TEXT_USERINFO.sub(r"\g<head>:***@", text))


def redact_value(text: str) -> str:
    """A value meant as a URL, that may not parse, with its password masked, safe to print.

    Everything between ``://`` and the last ``@`` is the userinfo, whatever it
    holds (quotes, spaces, ``#``): its part after the first ``:`` is masked,
    or all of it when it has no ``:``.
    """
    scheme, sep, rest = text.partition("://")
    if not sep or "@" not in rest:
        return redact_text(text)
    userinfo, _, host = rest.rpartition("@")
    user, colon, _ = userinfo.partition(":")
    return f"{scheme}://{user}:***@{host}" if colon else f"{scheme}://***@{host}"


class RedisURL:
    """A Redis URL that never shows its password: ``str()`` and ``repr()`` redact it.

    The URL travels inside one (settings, sources, their reprs in a
    traceback); only :meth:`reveal` gives it whole, to a client or a child
    process. :meth:`secrets` are the texts a run must never write.
    """

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def reveal(self) -> str:
        """The URL with its password: for a Redis client, never for people."""
        return self._url

    def secrets(self) -> tuple[str, ...]:
        """The password as written in the URL and decoded (and any ``password=`` value)."""
        found: list[str] = []
        try:
            parts = urlsplit(self._url)
            candidates = [parts.password or ""]
            candidates += [v for k, v in parse_qsl(parts.query) if k.lower() == "password"]
        except ValueError:  # validated URLs parse; be safe anyway
            candidates = []
        match = _TEXT_USERINFO.search(self._url)
        if match is not None:
            candidates.append(match.group(0)[len(match.group("head")) + 1 : -1])
        for candidate in candidates:
            for form in (candidate, unquote(candidate)):
                if form and form not in found:
                    found.append(form)
        return tuple(found)

    def __str__(self) -> str:
        return redact_url(self._url)

    def __repr__(self) -> str:
        return f"RedisURL({redact_url(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RedisURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)

    def __reduce__(self) -> tuple[type[RedisURL], tuple[str]]:
        return (RedisURL, (self._url,))
