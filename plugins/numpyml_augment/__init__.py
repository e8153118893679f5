"""numpyml built-in plugin: data augmentation transforms (random crop, horizontal flip, cutout,
alternating flip) and the ``batch_context`` callback that gives transforms the epoch and sample
indices of each batch.

Translations by up to 2 pixels with reflect padding are ``random_crop`` with ``padding = 2`` and
``mode = "reflect"``.
"""

from __future__ import annotations

from numpyml_core import hookimpl


@hookimpl
def numpyml_register_components(register):
    # lazy references ("module:Class", docs/plugins.md): a module is imported when its component is first used
    register("transform", "random_crop", "numpyml_augment.transforms:RandomCrop")
    register("transform", "horizontal_flip", "numpyml_augment.transforms:HorizontalFlip")
    register("transform", "cutout", "numpyml_augment.transforms:Cutout")
    register("transform", "alternating_flip", "numpyml_augment.transforms:AlternatingFlip")
    register("callback", "batch_context", "numpyml_augment.transforms:BatchContext")
