"""Redis for the harness: a private server, where Redis is (one source), and the clients made on it.

- :mod:`.url`: :class:`~.url.RedisURL`, a URL that never shows its password; redaction;
- :mod:`.server`: spawn a throwaway redis-server (standard library only);
- :mod:`.source`: :class:`~.source.RedisSource`, fake | server | URL, carried as one
  object from the option to every client and child process;
- :mod:`.namespace`: the prefix of every name the harness makes on a Redis it does
  not own, and the removal of every key holding it;
- :mod:`.clients`: the clients one test made, and their clean-up across event loops;
- :mod:`.scrub`: secrets masked in every pytest report.
"""
