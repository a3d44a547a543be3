"""jaxcnn: the classic convolutional networks in JAX/Flax, trained the papers' way."""

__version__ = "0.1.0"
