"""Tests of the wire observer: the RESP codec and the proxy, on fakeredis's TCP server and a real server."""
