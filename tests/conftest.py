"""Test configuration: 8 virtual CPU devices, set before JAX is imported anywhere."""
import os
import sys

os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                           " --xla_force_host_platform_device_count=8").strip()
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pytest  # noqa: E402

from jaxcnn.data import sources  # noqa: E402

needs_fashion_mnist = pytest.mark.skipif(
    not os.path.exists(os.path.join(sources.DEBIAN_FASHION_MNIST, "train-images-idx3-ubyte.gz")),
    reason="Fashion-MNIST files missing: apt-get install -y dataset-fashion-mnist")


@pytest.fixture(scope="session")
def fashion_mnist_test():
  return sources.load("fashion_mnist", "test", download=False)
