"""What a backend is handed cannot change what the harness checks: verify, accuracy, later runs."""

from __future__ import annotations

import numpy as np
import pytest

from harness.runner.inputs import RunInputs, read_only, read_only_message
from tests.helpers import fake, records, run, verify


def tampering(name: str) -> list[str]:
    return ["--backend-path", f"tests.tampering_backends:{name}"]


def _only_record(tmp_path) -> dict:
    (record,) = records(tmp_path).values()
    return record


# -- the views themselves ----------------------------------------------------------------------


def test_a_read_only_view_cannot_be_written_nor_made_writable():
    original = np.arange(12.0).reshape(3, 4)
    view = read_only(original)
    assert view.shape == (3, 4) and view.dtype == original.dtype
    with pytest.raises(ValueError, match="read-only"):
        view[0, 0] = 1
    with pytest.raises(ValueError, match="read-only"):
        view *= 2
    with pytest.raises(ValueError, match="WRITEABLE"):
        view.setflags(write=True)
    with pytest.raises(ValueError, match="WRITEABLE"):
        view[1:].setflags(write=True)
    assert original[0, 0] == 0 and np.array(view).flags.writeable  # a copy is the user's


def test_the_harness_keeps_its_own_copies_and_sees_a_bypass():
    x, y = np.ones((4, 3), np.float32), np.arange(4)
    init = {"W1": np.ones((3, 2), np.float32)}
    inputs = RunInputs(x, y, x[:2], y[:2], init, np.zeros((5, 2), np.int32))
    assert inputs.changed() == []
    y[:] = 7  # what a backend going round the flag would reach
    init["W1"][0, 0] = 5
    assert inputs.changed() == ["train_y", "init['W1']"]
    assert inputs.own_train_y.tolist() == [0, 1, 2, 3] and inputs.own_init["W1"][0, 0] == 1
    chunk = inputs.chunk(0, 2)
    assert not chunk.flags.writeable and not np.shares_memory(chunk, inputs.own_batches)


def test_the_message_names_the_input_written_into():
    labels = np.zeros(3, np.int64)
    inputs = RunInputs(
        np.zeros((3, 2)), labels, np.zeros((2, 2)), labels, {"W1": np.zeros((2, 4))}, labels
    )

    def backend_setup(train_x, train_y, init):
        init["W1"] *= 2

    try:
        backend_setup(inputs.train_x, inputs.train_y, inputs.init)
    except ValueError as exc:
        message = read_only_message(exc, inputs.handed)
    assert message.startswith("the backend wrote into init['W1'], which the harness hands over ")
    assert "copy it first (np.array(init['W1']))" in message


def test_a_write_not_traced_to_an_input_blames_none():
    labels = np.zeros(3, np.int64)
    inputs = RunInputs(
        np.zeros((3, 2)), labels, np.zeros((2, 2)), labels, {"W1": np.zeros((2, 4))}, labels
    )
    own = np.zeros(4)
    own.setflags(write=False)  # the backend's own array, not one it was handed
    try:
        own += 1
    except ValueError as exc:
        message = read_only_message(exc, inputs.handed)
    assert message.startswith("the backend wrote into a read-only array (ValueError: ")
    assert "if it is one of them, copy it first" in message


# -- runs: a write fails the run, naming the input ---------------------------------------------


@pytest.mark.parametrize(
    ("backend", "named"),
    [
        ("ScalesInitInPlace", "init['W1']"),
        ("NormalisesTrainX", "train_x"),
        ("RelabelsTrainY", "train_y"),
        ("KeepsLabelsAsAttribute", "train_y"),
        ("SortsBatches", "batch_indices"),
        ("ZeroesPredictInput", "train_x"),
        ("MakesInputWritable", "train_x"),
    ],
)
def test_writing_into_an_input_fails_the_run_naming_it(idx_dir, tmp_path, backend, named):
    assert run(idx_dir, tmp_path, *tampering(backend)) == 1
    record = _only_record(tmp_path)
    assert record["status"] == "failed"
    first = record["error"].splitlines()[0]
    assert first.startswith(f"the backend wrote into {named}, which the harness hands over"), first
    assert "copy it first" in first
    assert record["train_acc"] is None


@pytest.mark.parametrize(
    ("backend", "named"),
    [
        ("BypassesToLabels", "train_y"),
        ("BypassesToInit", "init['W1']"),
    ],
)
def test_going_round_the_flag_is_caught_and_fails_the_run(idx_dir, tmp_path, backend, named):
    assert run(idx_dir, tmp_path, *tampering(backend)) == 1
    record = _only_record(tmp_path)
    assert record["status"] == "failed"
    assert (
        f"the backend changed its input {named} although it was handed over read-only"
        in (record["error"])
    )


def test_accuracy_is_scored_on_the_harness_labels_not_the_ones_handed(idx_dir, tmp_path):
    """Its labels rewritten to its constant prediction (after its proof, in its first
    predict), the backend still scores ~10 %; the changed input then fails the run."""
    assert run(idx_dir, tmp_path, *tampering("BypassesToLabelsLate")) == 1
    record = _only_record(tmp_path)
    assert record["curve"], "evaluations before the end must have run"
    assert all(point["train_acc"] < 0.3 for point in record["curve"])
    assert "changed its input train_y" in record["error"]


def test_rewriting_the_batch_stream_fails_the_proof_and_harms_no_other_run(idx_dir, tmp_path):
    """Each chunk is a fresh copy: a backend that zeroes its first chunk trained on rows it
    was not given (its proof fails), and the next run gets the real batches."""
    assert run(idx_dir, tmp_path, *tampering("BypassesToBatches"), "--backend", "numpy") == 1
    found = {r["backend"]: r for r in records(tmp_path).values()}
    assert "proof failed" in found["bypasses-to-batches"]["error"]
    assert found["numpy"]["status"] == "ok" and found["numpy"]["proof"]["passed"]
    assert found["bypasses-to-batches"]["batches_sha256"] == found["numpy"]["batches_sha256"]


# -- verify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "name"),
    [
        ("ScalesInitInPlace", "scales-init"),
        ("RelabelsTrainY", "relabels-train-y"),
        ("SortsBatches", "sorts-batches"),
        ("BypassesToInit", "bypasses-to-init"),
        ("BypassesToLabels", "bypasses-to-labels"),
    ],
)
def test_verify_never_passes_a_backend_that_alters_its_inputs(idx_dir, backend, name):
    result = verify(idx_dir, *tampering(backend), "--steps", "5")
    assert result.returncode == 1, result.stdout + result.stderr
    (line,) = [line for line in result.stdout.splitlines() if line.startswith(f"{name}: ")]
    assert line.startswith((f"{name}: FAIL", f"{name}: FAILED TO RUN")), line


def test_verify_still_passes_numpy_and_fails_a_copy_that_rescales(idx_dir):
    result = verify(idx_dir, "--backend", "numpy", *fake("IgnoresInit"), "--steps", "5")
    assert "numpy: pass" in result.stdout
    assert "ignores-init: FAIL" in result.stdout


# -- values that cannot be -----------------------------------------------------------------


def test_a_negative_loss_fails_the_run_naming_the_rule(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *tampering("NegativeLoss")) == 1
    record = _only_record(tmp_path)
    assert record["status"] == "failed"
    assert record["error"].startswith(
        "BackendMisbehaved: train_steps returned the loss -0.25, which no cross-entropy can be "
        "(rule: loss ≥ -1e-06"
    )


def test_a_negative_phase_time_fails_the_run_naming_the_rule(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, *tampering("NegativePhase"), "--profile") == 1
    record = _only_record(tmp_path)
    assert record["status"] == "failed"
    assert (
        "phase_times gave phase 'forward' -1.0 s (rule: a time is finite and ≥ 0)"
        in (record["error"])
    )


# -- where the worker runs ------------------------------------------------------------------


def test_a_relative_write_lands_in_the_run_scratch_folder(idx_dir, tmp_path, monkeypatch):
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    monkeypatch.chdir(checkout)
    assert run(idx_dir, tmp_path, *tampering("WritesRelativeFile")) == 0
    assert not (checkout / "left-by-plugin.txt").exists()
    assert list(checkout.iterdir()) == []


def test_data_changed_during_a_session_fails_the_later_runs_naming_the_file(
    idx_dir, tmp_path, monkeypatch
):
    labels = idx_dir / "train-labels-idx1-ubyte"
    monkeypatch.setenv("DATA_FILE", str(labels))
    argv = [*tampering("ChangesTheData"), "--backend", "numpy", "--repeats", "2"]
    assert run(idx_dir, tmp_path, *argv) == 1
    found = records(tmp_path)
    assert found["numpy-t1-r0"]["status"] == "ok"
    assert found["changes-data-t1-r0"]["status"] == "ok"  # it checked the data, then changed it
    for later in (found["numpy-t1-r1"], found["changes-data-t1-r1"]):
        assert later["status"] == "failed"
        assert later["error"].startswith(
            f"DataError: {labels}: changed since the session checked it"
        ), later["error"]
        assert later["data"]["verified"] is False and "checked_in_worker" not in later["data"]


def test_the_record_says_verified_only_after_its_worker_checked(idx_dir, tmp_path):
    assert run(idx_dir, tmp_path, "--backend", "numpy") == 0
    data = _only_record(tmp_path)["data"]
    assert data["checked_in_worker"] is True and data["check_s"] >= 0
    assert data["verified"] is False  # dataset=idx: there are no published checksums to match
