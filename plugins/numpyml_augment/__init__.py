"""numpyml built-in plugin: data augmentation transforms (random crop, horizontal flip, cutout,
alternating flip) and the ``batch_context`` callback that gives transforms the epoch and sample
indices of each batch.

Translations by up to 2 pixels with reflect padding are ``random_crop`` with ``padding = 2`` and
``mode = "reflect"``.
"""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("transform", "random_crop"): "numpyml_augment.transforms:RandomCrop",
    ("transform", "horizontal_flip"): "numpyml_augment.transforms:HorizontalFlip",
    ("transform", "cutout"): "numpyml_augment.transforms:Cutout",
    ("transform", "alternating_flip"): "numpyml_augment.transforms:AlternatingFlip",
    ("callback", "batch_context"): "numpyml_augment.transforms:BatchContext",
})

__all__ = ["AlternatingFlip", "BatchContext", "RandomCrop", "HorizontalFlip", "Cutout"]
__getattr__ = lazy_exports(__name__, {
    "RandomCrop": ".transforms:RandomCrop",
    "HorizontalFlip": ".transforms:HorizontalFlip",
    "Cutout": ".transforms:Cutout",
    "AlternatingFlip": ".transforms:AlternatingFlip",
    "BatchContext": ".transforms:BatchContext",
})
