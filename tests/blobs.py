"""A tiny synthetic dataset plugin, installed in tests as a fake third-party distribution."""

SOURCE = '''
import numpy as np
from numpyml_core import hookimpl
from numpyml_core.data import ArraySplit


class Blobs:
    """Ten Gaussian blobs drawn as 6x6 uint8 images; separable, so a working network learns it."""

    input_shape = (6, 6, 1)
    num_classes = 10
    class_names = [f"blob{i}" for i in range(10)]

    def __init__(self, samples: int = 1200, noise: float = 40.0):
        self.samples = samples
        self.noise = noise

    def load(self, data_dir):
        rng = np.random.default_rng(1234)
        centres = rng.uniform(40, 215, size=(10, 36))
        def make(n, seed):
            r = np.random.default_rng(seed)
            y = r.integers(0, 10, size=n)
            x = centres[y] + r.normal(0, self.noise, size=(n, 36))
            return ArraySplit(np.clip(x, 0, 255).astype(np.uint8).reshape(n, 6, 6, 1), y)
        return {"train": make(self.samples, 1), "test": make(300, 2)}


@hookimpl
def numpyml_register_components(register):
    register("dataset", "fakeplug_blobs", Blobs)
'''

EXPERIMENT = '''
name = "blobs"
seed = 11
[dataset]
type = "fakeplug_blobs"
validation = 200
[[model.layers]]
type = "flatten"
[[model.layers]]
type = "dense"
units = 32
activation = "tanh"
[[model.layers]]
type = "dense"
units = 10
activation = "softmax"
[cost]
type = "cross_entropy"
[optimizer]
type = "sgd"
learning_rate = 0.1
momentum = 0.9
[training]
epochs = 3
batch_size = 16
'''
