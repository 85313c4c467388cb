"""Redis Cluster: the harness's cluster source and the reference store on a private 3+3 cluster.

Every module here is marked ``real_redis`` (``pytestmark``) and uses the
``redis_cluster`` / ``cluster_url`` fixtures of this package's ``conftest.py``:
one cluster per session, since starting one costs about 2 s and 77 MB.
"""
