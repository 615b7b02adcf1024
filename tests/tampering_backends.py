"""Backends that write into what the harness handed them, or report values that cannot be.

Imported by worker processes. Each makes one natural mistake (normalising its inputs in place,
reusing a buffer it was given) or one deliberate one (going round the read-only flag), so the
tests can show that none of them changes what the harness checks.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from impls.numpy_scratch import NumpyBackend


def writable_owner(array: np.ndarray) -> np.ndarray:
    """Go round a read-only view to the memory behind it: what no honest backend does."""
    base = array
    while isinstance(base, np.ndarray) and base.base is not None:
        base = base.base
    if isinstance(base, memoryview):
        base = base.obj
    return np.asarray(base)


class ScalesInitInPlace(NumpyBackend):
    """Re-initialises the weights it was given, in place, before copying them."""

    name = "scales-init"

    def setup(self, spec, train_x, train_y, init):
        init["W1"] *= 2.0
        super().setup(spec, train_x, train_y, init)


class NormalisesTrainX(NumpyBackend):
    name = "normalises-train-x"

    def setup(self, spec, train_x, train_y, init):
        train_x -= train_x.mean()
        super().setup(spec, train_x, train_y, init)


class RelabelsTrainY(NumpyBackend):
    """Writes its own labels into the ones it was given, then always predicts that label."""

    name = "relabels-train-y"

    def setup(self, spec, train_x, train_y, init):
        train_y[:] = 3
        super().setup(spec, train_x, train_y, init)

    def predict(self, x):
        return np.full(len(x), 3, dtype=np.int64)


class KeepsLabelsAsAttribute(NumpyBackend):
    """The write happens in a method of its own, through an attribute."""

    name = "keeps-labels"

    def setup(self, spec, train_x, train_y, init):
        self.labels = train_y
        self.scrub()
        super().setup(spec, train_x, train_y, init)

    def scrub(self):
        self.labels[self.labels > 5] = 0


class SortsBatches(NumpyBackend):
    name = "sorts-batches"

    def train_steps(self, batch_indices):
        batch_indices.sort(axis=1)
        return super().train_steps(batch_indices)


class ZeroesPredictInput(NumpyBackend):
    name = "zeroes-x"

    def predict(self, x):
        np.multiply(x, 0, out=x)
        return super().predict(x)


class MakesInputWritable(NumpyBackend):
    name = "makes-writable"

    def setup(self, spec, train_x, train_y, init):
        train_x.setflags(write=True)
        super().setup(spec, train_x, train_y, init)


class BypassesToLabels(NumpyBackend):
    """Goes round the flag and writes its constant prediction into the training labels."""

    name = "bypasses-to-labels"

    def setup(self, spec, train_x, train_y, init):
        writable_owner(train_y)[:] = 3
        super().setup(spec, train_x, train_y, init)

    def predict(self, x):
        return np.full(len(x), 3, dtype=np.int64)


class BypassesToLabelsLate(BypassesToLabels):
    """The same write, made in its first predict: after the proof, before any score."""

    name = "bypasses-to-labels-late"

    def setup(self, spec, train_x, train_y, init):
        NumpyBackend.setup(self, spec, train_x, train_y, init)
        self.labels = train_y

    def predict(self, x):
        writable_owner(self.labels)[:] = 3
        return super().predict(x)


class BypassesToInit(NumpyBackend):
    """Goes round the flag and scales the initial weights it was given before copying them."""

    name = "bypasses-to-init"

    def setup(self, spec, train_x, train_y, init):
        writable_owner(init["W1"])[...] *= 2.0
        super().setup(spec, train_x, train_y, init)


class BypassesToBatches(NumpyBackend):
    """Goes round the flag and rewrites the batch stream: every later step gets row 0."""

    name = "bypasses-to-batches"

    def train_steps(self, batch_indices):
        writable_owner(batch_indices)[...] = 0
        return super().train_steps(batch_indices)


class NegativeLoss(NumpyBackend):
    name = "negative-loss"

    def train_steps(self, batch_indices):
        super().train_steps(batch_indices)
        return -0.25


class NegativePhase(NumpyBackend):
    name = "negative-phase"

    def phase_times(self):
        return {**super().phase_times(), "forward": -1.0}


class WritesRelativeFile(NumpyBackend):
    """Leaves a file at a relative path, as a plugin's log or cache would."""

    name = "writes-relative"

    def setup(self, spec, train_x, train_y, init):
        Path("left-by-plugin.txt").write_text("scratch")
        super().setup(spec, train_x, train_y, init)


class FillsTheDisk(NumpyBackend):
    """Fills the filesystem at $FILL_PATH during training, as another process might."""

    name = "fills-disk"

    def train_steps(self, batch_indices):
        import os

        fd = os.open(os.environ["FILL_PATH"], os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            while os.write(fd, b"\0" * 4096):
                pass
        except OSError:  # full: what it set out to do
            pass
        finally:
            os.close(fd)
        return super().train_steps(batch_indices)


class ChangesTheData(NumpyBackend):
    """Rewrites one label in the training-labels file on disk, as a re-download might."""

    name = "changes-data"

    def setup(self, spec, train_x, train_y, init):
        import os

        path = Path(os.environ["DATA_FILE"])
        raw = bytearray(path.read_bytes())
        raw[-1] = (raw[-1] + 1) % 10
        path.write_bytes(bytes(raw))
        super().setup(spec, train_x, train_y, init)
