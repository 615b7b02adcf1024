"""Backends that misbehave the way plugins do in the wild (imported by worker processes).

Each breaks one rule of the worker's process: exits, junk on descriptors, forged results,
escaping names, stray processes, wrong return types. The harness must record every one of them
and carry on.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

from impls.numpy_scratch import NumpyBackend

SLEEP = "3141"  # stray children run `sleep 3141`, so a test can look for them


class ExitsZero(NumpyBackend):
    name = "exits-zero"

    def train_steps(self, batch_indices):
        sys.exit(0)


class ExitsThree(NumpyBackend):
    name = "exits-three"

    def train_steps(self, batch_indices):
        sys.exit(3)


class ExitsWithText(NumpyBackend):
    name = "exits-text"

    def train_steps(self, batch_indices):
        sys.exit("bye")


class RaisesKeyboardInterrupt(NumpyBackend):
    name = "raises-keyboard-interrupt"

    def train_steps(self, batch_indices):
        raise KeyboardInterrupt


class HardExit(NumpyBackend):
    """os._exit skips every finally: no result is written at all."""

    name = "hard-exit"

    def train_steps(self, batch_indices):
        os._exit(0)


class KilledLikeOOM(NumpyBackend):
    """SIGKILL is what the kernel's OOM killer sends."""

    name = "killed"

    def train_steps(self, batch_indices):
        os.kill(os.getpid(), signal.SIGKILL)


class JunkOnDescriptors(NumpyBackend):
    """Writes garbage to every open descriptor above stderr, then trains normally."""

    name = "junk-on-fds"

    def train_steps(self, batch_indices):
        junk = [
            b'{"event": "trained", "iteration": "x", "test_acc": "y"}\n',
            b'{"event": "trained", "iteration": 5, "test_acc": 7.5, "loss": 0}\n',
            b"\xff\xfe not json\n",
            b"[1, 2, 3]\n",
            b"[" * 4000 + b"\n",  # nests past the JSON parser's recursion limit
            b"z" * 100_000 + b"\n",
        ]
        for fd in range(3, 64):
            for line in junk:
                try:
                    os.write(fd, line)
                except OSError:
                    break
        return super().train_steps(batch_indices)


class ForgesResult(NumpyBackend):
    """Looks in its job file for a result path, writes an ok record there, exits at once."""

    name = "forges-result"

    def train_steps(self, batch_indices):
        job_path = Path(sys.argv[1])
        job = json.loads(job_path.read_text())
        forged = {**job.get("record", {}), "status": "ok", "train_time_s": 0.0}
        forged.update(
            train_acc=1.0, test_acc=1.0, iterations_done=job["record"]["spec"]["iterations"]
        )
        for key in ("result_path",):
            if key in job:
                Path(job[key]).write_text(json.dumps(forged))
        for path in job_path.parent.iterdir():  # any file that looks like a result
            if "result" in path.name:
                path.write_text(json.dumps(forged))
        os._exit(0)


def _claim_a_day() -> None:
    """Reach into the worker's own record (same process) and claim a day of training."""
    import gc

    from harness.results.model import RunRecord

    for obj in gc.get_objects():
        if isinstance(obj, RunRecord):
            obj.train_time_s = 86400.0


class ClaimsTooMuchTime(NumpyBackend):
    """Rewrites its own record through the worker's process; the runner's clock disagrees."""

    name = "claims-a-day"

    def predict(self, x):
        _claim_a_day()
        return super().predict(x)


class EscapingName(NumpyBackend):
    name = "../../evil"


class SlashName(NumpyBackend):
    name = "a/b"


class DotName(NumpyBackend):
    name = ".hidden"


class ChildInSetup(NumpyBackend):
    """Leaves a child running and finishes ok."""

    name = "child-in-setup"

    def setup(self, spec, train_x, train_y, init):
        subprocess.Popen(["sleep", SLEEP])
        super().setup(spec, train_x, train_y, init)


class DaemonThenHangs(NumpyBackend):
    """Starts a child in a session of its own (setsid), then hangs until the timeout."""

    name = "daemon-then-hangs"

    def train_steps(self, batch_indices):
        subprocess.Popen(["sleep", SLEEP], start_new_session=True)
        subprocess.Popen(
            ["sh", "-c", f"sleep {SLEEP} & exit 0"], start_new_session=True
        )  # a grandchild orphaned at once
        signal.pause()
        return 0.0


class DeletesScratch(NumpyBackend):
    """Removes the folder its job file is in (the run's scratch folder)."""

    name = "deletes-scratch"

    def setup(self, spec, train_x, train_y, init):
        shutil.rmtree(Path(sys.argv[1]).parent, ignore_errors=True)
        super().setup(spec, train_x, train_y, init)


class IdsOutOfRange(NumpyBackend):
    name = "ids-out-of-range"

    def predict(self, x):
        return super().predict(x) + 1000


class NegativeIds(NumpyBackend):
    name = "negative-ids"

    def predict(self, x):
        return super().predict(x) - 20


class LossAsText(NumpyBackend):
    name = "loss-as-text"

    def train_steps(self, batch_indices):
        return f"{super().train_steps(batch_indices):.2f}"


class LossAsBool(NumpyBackend):
    name = "loss-as-bool"

    def train_steps(self, batch_indices):
        super().train_steps(batch_indices)
        return True


class LossAsNone(NumpyBackend):
    name = "loss-as-none"

    def train_steps(self, batch_indices):
        super().train_steps(batch_indices)


class LossAsZeroDimArray(NumpyBackend):
    """What array libraries return for a scalar: accepted, it is a real number."""

    name = "loss-as-0d-array"

    def train_steps(self, batch_indices):
        import numpy as np

        return np.array(super().train_steps(batch_indices))


# name → (status, words the error must contain), for the matrix of all of them.
EXPECTED = {
    "exits-zero": ("failed", "the backend called sys.exit(0)"),
    "exits-three": ("failed", "the backend called sys.exit(3)"),
    "exits-text": ("failed", "the backend called sys.exit('bye')"),
    "raises-keyboard-interrupt": ("failed", "KeyboardInterrupt raised inside the backend"),
    "hard-exit": ("failed", "worker died: exit status 0 without a result"),
    "killed": ("failed", "worker died: killed by signal SIGKILL (out of memory? the kernel's"),
    "junk-on-fds": ("ok", ""),
    "forges-result": ("failed", "worker died: exit status 0 without a result"),
    "claims-a-day": ("failed", "exceeds the worker's whole life"),
    "child-in-setup": ("ok", ""),
    "daemon-then-hangs": ("timeout", "killed after the 5 s timeout"),
    "deletes-scratch": ("ok", ""),
    "ids-out-of-range": ("failed", "they must lie within the dataset's classes, 0–9"),
    "negative-ids": ("failed", "they must lie within the dataset's classes, 0–9"),
    "loss-as-text": ("failed", "train_steps returned str '"),
    "loss-as-bool": ("failed", "train_steps returned bool True"),
    "loss-as-none": ("failed", "train_steps returned NoneType None"),
    "loss-as-0d-array": ("ok", ""),
}
CLASSES = {
    cls.name: cls.__name__
    for cls in list(globals().values())
    if isinstance(cls, type) and issubclass(cls, NumpyBackend) and cls.name in EXPECTED
}
