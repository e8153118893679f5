"""numpyml built-in plugin: datasets (MNIST, Fashion-MNIST)."""

from numpyml_core import hookimpl

from .mnist import MNIST, FashionMNIST

__all__ = ["MNIST", "FashionMNIST"]


@hookimpl
def numpyml_register_components(register):
    register("dataset", "mnist", MNIST)
    register("dataset", "fashion_mnist", FashionMNIST)
