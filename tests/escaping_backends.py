"""Backends whose work escapes the timed region, or its budget (imported by worker processes).

Each is the book's NumPy net doing the job right, with its work moved where the classic
benchmarking mistakes put it. Deferred work also sleeps ``DEFER_S`` per call, standing in for
the real job's size: the tests' toy data trains in microseconds.
"""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from pathlib import Path

import numpy as np

from impls.numpy_scratch import NumpyBackend

DEFER_S = 0.1


def _burn(seconds: float) -> float:
    """Use ``seconds`` of this thread's own CPU, however busy the machine is."""
    started = time.thread_time()
    x = 0.0
    while time.thread_time() - started < seconds:
        x += 1.0
    return x


class _Deferred(NumpyBackend):
    """Keeps the batches it is handed and trains on them later, in ``_catch_up``."""

    def setup(self, spec, train_x, train_y, init):
        super().setup(spec, train_x, train_y, init)
        self.pending: list[np.ndarray] = []

    def train_steps(self, batch_indices):
        self.pending.append(np.array(batch_indices))
        return 1.0

    def _catch_up(self):
        while self.pending:
            super().train_steps(self.pending.pop(0))
            time.sleep(DEFER_S)


class LazyInPredict(_Deferred):
    name = "lazy-in-predict"

    def predict(self, x):
        self._catch_up()
        return super().predict(x)


class LazyInParams(_Deferred):
    name = "lazy-in-params"

    def params(self):
        self._catch_up()
        return super().params()


class TrainsOnAThread(NumpyBackend):
    """Returns at once; a thread trains, and predict() (or the next call) waits for it."""

    name = "trains-on-a-thread"

    def train_steps(self, batch_indices):
        self._join()
        rows = np.array(batch_indices)
        self.thread = threading.Thread(target=self._train, args=(rows,))
        self.thread.start()
        return 1.0

    def _train(self, rows):
        time.sleep(DEFER_S / 2)
        NumpyBackend.train_steps(self, rows)

    def _join(self):
        if getattr(self, "thread", None) is not None:
            self.thread.join()

    def predict(self, x):
        self._join()
        return super().predict(x)


class _Queue(NumpyBackend):
    """An asynchronous device queue: steps run on a worker thread in order, after the call."""

    def setup(self, spec, train_x, train_y, init):
        super().setup(spec, train_x, train_y, init)
        self.queue: list[np.ndarray] = []
        self.lock = threading.Condition()
        threading.Thread(target=self._device, daemon=True).start()

    def train_steps(self, batch_indices):
        with self.lock:
            self.queue.append(np.array(batch_indices))
            self.lock.notify_all()
        return 1.0

    def _device(self):
        while True:
            with self.lock:
                while not self.queue:
                    self.lock.wait()
                rows = self.queue[0]
            time.sleep(DEFER_S / 2)
            NumpyBackend.train_steps(self, rows)
            with self.lock:
                self.queue.pop(0)
                self.lock.notify_all()

    def _drain(self):
        with self.lock:
            while self.queue:
                self.lock.wait()

    def params(self):  # reading parameters back waits for the queue, as a device copy does
        self._drain()
        return super().params()

    def predict(self, x):
        self._drain()
        return super().predict(x)


class UnsynchronisedQueue(_Queue):
    name = "unsynchronised-queue"


class SynchronisedQueue(_Queue):
    """The same queue, waited for in the hook the harness calls inside the timed region."""

    name = "synchronised-queue"

    def synchronize(self):
        self._drain()


class TrainsInSetup(NumpyBackend):
    """Trains a whole job in setup, on batches of its own, and nothing when asked to."""

    name = "trains-in-setup"

    def setup(self, spec, train_x, train_y, init):
        super().setup(spec, train_x, train_y, init)
        rng = np.random.default_rng(spec.seed)
        batches = rng.integers(0, len(train_x), size=(spec.iterations, spec.batch))
        super().train_steps(batches)

    def train_steps(self, batch_indices):
        return 0.5


class KeepsParamsOnDisk(NumpyBackend):
    """Saves its trained parameters to an absolute path; a later run loads them and skips
    training (the path comes from FAKE_PARAMS_FILE)."""

    name = "keeps-params-on-disk"

    def setup(self, spec, train_x, train_y, init):
        super().setup(spec, train_x, train_y, init)
        self.path = Path(os.environ["FAKE_PARAMS_FILE"])
        self.cached = self.path.exists()
        if self.cached:
            saved = np.load(self.path)
            for name in self.net.params:
                self.net.params[name][...] = saved[name]

    def train_steps(self, batch_indices):
        if self.cached:
            return 0.5
        return super().train_steps(batch_indices)

    def close(self):
        if not self.cached:
            np.savez(self.path, **self.net.params)


class SkipsStepsInLongCalls(NumpyBackend):
    """Right one step per call (all that verify used to send); in a longer call, every other
    step only."""

    name = "skips-steps-in-long-calls"

    def train_steps(self, batch_indices):
        if len(batch_indices) > 1:
            batch_indices = batch_indices[::2]
        return super().train_steps(batch_indices)


class PoolWithinACall(NumpyBackend):
    """Trains, and within the same call runs a pool of two processes that start, use
    ``POOL_CPU_S`` of CPU each, and end: their time counts only once they are reaped."""

    name = "pool-within-a-call"
    POOL_CPU_S = 0.2

    def train_steps(self, batch_indices):
        loss = super().train_steps(batch_indices)
        with multiprocessing.get_context("fork").Pool(2) as pool:
            pool.map(_burn, [self.POOL_CPU_S] * 2)
        return loss


class HelperThread(NumpyBackend):
    """At any budget, runs NumPy products on a second thread beside the main one."""

    name = "helper-thread"
    HELPER_CPU_S = 0.2

    def train_steps(self, batch_indices):
        helper = threading.Thread(target=_products, args=(self.HELPER_CPU_S,))
        helper.start()
        loss = super().train_steps(batch_indices)
        _burn(self.HELPER_CPU_S)
        helper.join()
        return loss


def _products(seconds: float) -> None:
    a = np.ones((64, 64))
    started = time.thread_time()
    while time.thread_time() - started < seconds:
        a = a @ a / 64.0


class VersionAsText(NumpyBackend):
    """Declares its version as a class attribute, not a method: the meaning is clear."""

    name = "version-as-text"
    version = "1.2"


class BuildInfoAsDict(NumpyBackend):
    """A hook given as a value where a method is called: refused when it loads."""

    name = "build-info-as-dict"
    build_info = {"kernel": "mine"}  # noqa: RUF012 (the wrong kind is the point)


class CallsItselfNumpy(NumpyBackend):
    """Takes the built-in's name: its runs would pool and pair with the built-in's."""

    name = "numpy"
