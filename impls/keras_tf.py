"""Keras 3 on TensorFlow: ``keras`` follows the harness's batches, ``keras-fit`` is plain model.fit.

``keras`` gathers each batch from the harness's index stream inside one compiled tf.function per
chunk of steps (the training set is a tensor held once, from setup), so it does the same job as
every other backend. ``keras-fit`` is what most users write — ``model.fit`` on a shuffled
tf.data pipeline — and draws its own batches, so it is timed but left out of equivalence checks.

TensorFlow and Keras are imported in ``setup``: import and graph-building time count as setup.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import time
from typing import Any

import numpy as np

from harness.spec import Spec

INSTALL_HINT = "TensorFlow/Keras are not installed; install them with: pip install -e '.[keras]'"
PREDICT_BLOCK = 10_000


def _dist_version(name: str) -> str:
    """The installed version without importing it (TensorFlow takes seconds to import)."""
    for dist in (name, f"{name}-cpu"):
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return "?"


class KerasBackend:
    name = "keras"
    follows_batch_stream = True
    phases_note = (
        "approximate: forward and backward are timed together (one TensorFlow tape spans "
        "both), and three tf.function calls per step sum to more than the fused graph loop"
    )

    def __init__(self) -> None:
        self.threads: int | None = None

    @staticmethod
    def unavailable_reason() -> str | None:
        if not all(importlib.util.find_spec(m) for m in ("tensorflow", "keras")):
            return INSTALL_HINT
        return None

    @staticmethod
    def version() -> str:
        return f"keras {_dist_version('keras')} / tensorflow {_dist_version('tensorflow')}"

    def configure_threads(self, threads: int | None) -> None:
        self.threads = threads

    def build_info(self) -> dict[str, Any]:
        import tensorflow as tf

        # What TensorFlow was told (0 = its own default, one thread per core).
        return {
            "tf_intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
            "tf_inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        }

    def _build_model(self, spec: Spec, init: dict[str, np.ndarray]):
        import tensorflow as tf

        if self.threads is not None:  # must happen before TensorFlow runs its first op
            tf.config.threading.set_intra_op_parallelism_threads(self.threads)
            tf.config.threading.set_inter_op_parallelism_threads(self.threads)
        import keras

        features, hidden = init["W1"].shape
        model = keras.Sequential(
            [
                keras.Input((features,), dtype=spec.dtype),
                keras.layers.Dense(hidden, activation="relu", dtype=spec.dtype),
                keras.layers.Dense(init["W2"].shape[1], dtype=spec.dtype),
            ]
        )
        model.layers[0].set_weights([init["W1"], init["b1"]])
        model.layers[1].set_weights([init["W2"], init["b2"]])
        # Softmax + cross-entropy on logits: the gradient is (softmax - onehot) / batch, as in
        # the book's SoftmaxWithLoss.
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        optimizer = keras.optimizers.SGD(learning_rate=spec.lr, momentum=0.0)
        return model, loss, optimizer

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        import tensorflow as tf

        self.dtype = spec.dtype
        self.model, loss_fn, optimizer = self._build_model(spec, init)
        optimizer.build(self.model.trainable_variables)
        self.train_x = tf.constant(train_x, dtype=spec.dtype)
        self.train_y = tf.constant(train_y, dtype=tf.int64)
        model, weights = self.model, self.model.trainable_variables

        batches_spec = tf.TensorSpec([None, spec.batch], tf.int32)
        inputs_spec = tf.TensorSpec([None, train_x.shape[1]], spec.dtype)

        @tf.function(input_signature=[batches_spec])
        def train_chunk(batch_indices: tf.Tensor) -> tf.Tensor:
            total = tf.constant(0.0, dtype=tf.float64)
            for step in tf.range(tf.shape(batch_indices)[0]):
                rows = batch_indices[step]
                x = tf.gather(self.train_x, rows)
                t = tf.gather(self.train_y, rows)
                with tf.GradientTape() as tape:
                    loss = loss_fn(t, model(x, training=True))
                optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
                total += tf.cast(loss, tf.float64)
            return total / tf.cast(tf.shape(batch_indices)[0], tf.float64)

        @tf.function(input_signature=[inputs_spec])
        def logits(x: tf.Tensor) -> tf.Tensor:
            return model(x, training=False)

        # Tracing builds the graphs without running a step: graph building counts as setup.
        train_chunk.get_concrete_function()
        logits.get_concrete_function()
        self._train_chunk, self._logits = train_chunk, logits
        if hasattr(self, "phases"):
            self._build_profiled_step(spec, loss_fn, optimizer)

    def enable_profiling(self) -> None:
        self.phases = dict.fromkeys(("batch", "forward+backward", "update"), 0.0)

    def phase_times(self) -> dict[str, float]:
        return dict(self.phases)

    def _build_profiled_step(self, spec: Spec, loss_fn, optimizer) -> None:
        """--profile: one tf.function per phase, timed from Python.

        An approximation: TensorFlow's tape spans forward and backward, so they are timed
        together, and three calls per step cost more than the fused graph loop, so the phases
        add up to more than the unprofiled training time.
        """
        import tensorflow as tf

        model, weights = self.model, self.model.trainable_variables
        rows_spec = tf.TensorSpec([spec.batch], tf.int32)

        @tf.function(input_signature=[rows_spec])
        def gather(rows):
            return tf.gather(self.train_x, rows), tf.gather(self.train_y, rows)

        @tf.function
        def forward_backward(x, t):
            with tf.GradientTape() as tape:
                loss = loss_fn(t, model(x, training=True))
            return loss, tape.gradient(loss, weights)

        @tf.function
        def update(grads):
            optimizer.apply_gradients(zip(grads, weights, strict=True))

        self._profiled = (gather, forward_backward, update)

    def train_steps(self, batch_indices: np.ndarray) -> float:
        if hasattr(self, "_profiled"):
            return self._train_steps_profiled(np.asarray(batch_indices, dtype=np.int32))
        return float(self._train_chunk(np.asarray(batch_indices, dtype=np.int32)))

    def _train_steps_profiled(self, batch_indices: np.ndarray) -> float:
        gather, forward_backward, update = self._profiled
        clock, total = time.perf_counter, 0.0
        for rows in batch_indices:
            t0 = clock()
            x, t = gather(rows)
            t1 = clock()
            loss, grads = forward_backward(x, t)
            t2 = clock()
            update(grads)
            t3 = clock()
            self.phases["batch"] += t1 - t0
            self.phases["forward+backward"] += t2 - t1
            self.phases["update"] += t3 - t2
            total += float(loss)
        return total / len(batch_indices)

    def predict(self, x: np.ndarray) -> np.ndarray:
        classes = [
            np.argmax(self._logits(x[start : start + PREDICT_BLOCK].astype(self.dtype)), axis=1)
            for start in range(0, len(x), PREDICT_BLOCK)
        ]
        return np.concatenate(classes).astype(np.int64)

    def params(self) -> dict[str, np.ndarray]:
        first, second = self.model.layers
        return {
            "W1": first.kernel.numpy(),
            "b1": first.bias.numpy(),
            "W2": second.kernel.numpy(),
            "b2": second.bias.numpy(),
        }


class KerasFitBackend(KerasBackend):
    """``model.fit`` on a shuffled tf.data pipeline, batch 100: the way most people write it.

    Each ``train_steps(indices)`` call fits ``len(indices)`` steps; the indices themselves are
    ignored, so the record says ``follows_batch_stream: false``.
    """

    name = "keras-fit"
    follows_batch_stream = False
    enable_profiling = None  # model.fit's steps cannot be split into phases from outside

    def setup(
        self, spec: Spec, train_x: np.ndarray, train_y: np.ndarray, init: dict[str, np.ndarray]
    ) -> None:
        import tensorflow as tf

        self.dtype = spec.dtype
        self.model, loss_fn, optimizer = self._build_model(spec, init)
        self.model.compile(optimizer=optimizer, loss=loss_fn)
        self.dataset = (
            tf.data.Dataset.from_tensor_slices((train_x.astype(spec.dtype), train_y))
            .shuffle(len(train_x), seed=spec.seed, reshuffle_each_iteration=True)
            .batch(spec.batch, drop_remainder=True)
            .repeat()
        )
        inputs_spec = tf.TensorSpec([None, train_x.shape[1]], spec.dtype)
        self._logits = tf.function(
            lambda x: self.model(x, training=False), input_signature=[inputs_spec]
        )
        self._logits.get_concrete_function()

    def train_steps(self, batch_indices: np.ndarray) -> float:
        history = self.model.fit(
            self.dataset, epochs=1, steps_per_epoch=len(batch_indices), verbose=0
        )
        return float(history.history["loss"][-1])
