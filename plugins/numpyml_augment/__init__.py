"""numpyml built-in plugin: data augmentation transforms (random crop, horizontal flip, cutout)."""

from __future__ import annotations

from numpyml_core import component_table, lazy_exports

# lazy references (docs/plugins.md): each module is imported when its component is first used
numpyml_register_components = component_table({
    ("transform", "random_crop"): "numpyml_augment.transforms:RandomCrop",
    ("transform", "horizontal_flip"): "numpyml_augment.transforms:HorizontalFlip",
    ("transform", "cutout"): "numpyml_augment.transforms:Cutout",
})

__all__ = ["RandomCrop", "HorizontalFlip", "Cutout"]
__getattr__ = lazy_exports(__name__, {
    "RandomCrop": ".transforms:RandomCrop",
    "HorizontalFlip": ".transforms:HorizontalFlip",
    "Cutout": ".transforms:Cutout",
})
