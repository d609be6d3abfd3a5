"""A real local Ray for the session, started in this process as `ray.init(num_cpus=1)`.

Ray would advertise the machine's network address; tests keep every connection on the
loopback, so Ray is started in its single-host mode (the one it uses on macOS). Its session
files go under a temporary folder removed afterwards, and `ray.shutdown()` stops what it
started.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(scope="session")
def local_ray() -> Iterator[Any]:
    # Ray's sockets live under its folder, and a socket's path is limited to 107 bytes: a
    # short folder of its own rather than one deep under pytest's base.
    temp_dir = tempfile.mkdtemp(prefix="ray-", dir="/tmp")
    # Read when Ray is first imported, here and in each worker it starts: loopback only.
    saved = os.environ.get("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER")
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray  # the dev extra installs it: a missing Ray fails here, never skips

    ray.init(
        num_cpus=1,
        include_dashboard=False,
        log_to_driver=False,
        _node_ip_address="127.0.0.1",
        _temp_dir=temp_dir,
    )
    try:
        yield ray
    finally:
        ray.shutdown()
        shutil.rmtree(temp_dir, ignore_errors=True)
        if saved is None:
            os.environ.pop("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", None)
        else:
            os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = saved
