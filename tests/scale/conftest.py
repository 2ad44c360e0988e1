"""One local Ray session (2 CPUs, no dashboard) for every test of tests/scale that needs it: Ray starts in
seconds, not milliseconds. Shut down after the last test of the package."""

import pytest


@pytest.fixture(scope="package")
def ray_local():
    pytest.importorskip("ray.data", reason="the [scale] extra (ray[data]) is not installed")
    from cbir.scale.ray_extract import ray_session

    with ray_session(workers=2) as ray:
        yield ray
