"""`ray start` for a test node that lives on 127.0.0.1 only, like the rest of the suite's servers.

Ray 2.60 rewrites a loopback address given to `ray start` (`--node-ip-address=127.0.0.1`, `--address=127.0.0.1:P`)
into the machine's routable address (`services.resolve_ip_for_localhost`; ray-project/ray#59110), so nodes said to be
on 127.0.0.1 listened on every interface and talked over the machine's own address. Here that rewrite is the
identity: the node's address is what the command line says, and Ray binds its servers to 127.0.0.1 alone. Drivers
of such a cluster set `RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0` (`servers.RAY_DRIVER_ENV`), Ray's own switch that makes
a process take 127.0.0.1 as its node address.
"""

import sys

import ray._private.services as services

services.resolve_ip_for_localhost = lambda host: host

from ray.scripts.scripts import main  # noqa: E402 (after the rewrite is replaced)

if __name__ == "__main__":
    sys.exit(main())
