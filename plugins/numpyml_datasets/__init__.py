"""numpyml built-in plugin: datasets (MNIST, Fashion-MNIST, CIFAR-10, CIFAR-100)."""

from numpyml_core import hookimpl

from .cifar import CIFAR10, CIFAR100
from .mnist import MNIST, FashionMNIST

__all__ = ["MNIST", "FashionMNIST", "CIFAR10", "CIFAR100"]


@hookimpl
def numpyml_register_components(register):
    register("dataset", "mnist", MNIST)
    register("dataset", "fashion_mnist", FashionMNIST)
    register("dataset", "cifar10", CIFAR10)
    register("dataset", "cifar100", CIFAR100)
