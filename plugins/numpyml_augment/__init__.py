"""numpyml built-in plugin: data augmentation transforms (random crop, horizontal flip, cutout)."""

from __future__ import annotations

from numpyml_core import hookimpl, lazy_exports

# What this plugin provides, as lazy references: a module is imported when its component is first
# used, so loading the plugin (numpyml list, --help) does not import NumPy or the implementation.
COMPONENTS: dict[tuple[str, str], str] = {
    ("transform", "random_crop"): "numpyml_augment.transforms:RandomCrop",
    ("transform", "horizontal_flip"): "numpyml_augment.transforms:HorizontalFlip",
    ("transform", "cutout"): "numpyml_augment.transforms:Cutout",
}

__all__ = ["RandomCrop", "HorizontalFlip", "Cutout"]
__getattr__ = lazy_exports(__name__, {
    "RandomCrop": ".transforms:RandomCrop",
    "HorizontalFlip": ".transforms:HorizontalFlip",
    "Cutout": ".transforms:Cutout",
})


@hookimpl
def numpyml_register_components(register):
    for (kind, name), factory in COMPONENTS.items():
        register(kind, name, factory)
