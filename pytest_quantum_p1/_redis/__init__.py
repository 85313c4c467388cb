"""Redis for the harness: a private server, where Redis is (one source), and the clients made on it.

- :mod:`.server`: spawn a throwaway redis-server; URL redaction (standard library only);
- :mod:`.source`: :class:`~.source.RedisSource`, fake | server | URL, carried as one
  object from the option to every client and child process;
- :mod:`.clients`: the clients one test made, and their clean-up across event loops.
"""
