"""numpyml built-in plugin: data augmentation transforms (random crop, horizontal flip, cutout)."""

from numpyml_core import hookimpl

from .transforms import Cutout, HorizontalFlip, RandomCrop

__all__ = ["RandomCrop", "HorizontalFlip", "Cutout"]


@hookimpl
def numpyml_register_components(register):
    register("transform", "random_crop", RandomCrop)
    register("transform", "horizontal_flip", HorizontalFlip)
    register("transform", "cutout", Cutout)
