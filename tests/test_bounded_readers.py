"""No file in a session stops a reader or costs it more than a small, stated amount.

Whatever matches the record pattern (``*.json``) is listed as ``unreadable: FILE: REASON`` when
it cannot be used, and the rest of the session is read.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.results import store
from harness.results.model import InvalidFile
from tests.helpers import make_record, make_session


def _good(root: Path, name: str) -> Path:
    return make_session(root, name, [make_record("numpy", 3.0 + 0.01 * r, r) for r in range(3)])


def _hostile(session: Path) -> dict[str, str]:
    """The four files of the issue, and what each is refused for."""
    with open(session / "junk-50mb.json", "wb") as junk:
        junk.write(b'{"backend": "' + b"x" * (50 * 2**20) + b'"}')
    depth = 5000
    (session / "nested.json").write_text("[" * depth + "]" * depth)
    os.mkfifo(session / "fifo.json")
    (session / "zero.json").symlink_to("/dev/zero")
    return {
        "junk-50mb.json": "larger than 8 MiB, the most a results file may be",
        "nested.json": "nested deeper than 32 levels",
        "fifo.json": "not a regular file (a FIFO)",
        "zero.json": "not a regular file (a character device)",
    }


def _peak_rss_mb(*args: str) -> tuple[subprocess.CompletedProcess, float]:
    """The harness CLI in a child; its peak resident memory in MB (the child's own getrusage)."""
    code = (
        "import resource, sys\nfrom harness.cli import main\n"
        "try:\n    code = main(sys.argv[1:])\nfinally:\n"
        "    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "    print(f'PEAK_KB={peak}', file=sys.stderr)\nsys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120
    )
    peak = next(line for line in done.stderr.splitlines() if line.startswith("PEAK_KB="))
    return done, int(peak.split("=")[1]) / 1024


@pytest.mark.parametrize(
    "command",
    [
        ("report", "{b}", "--out", "{out}"),
        ("compare", "{a}", "{b}"),
        ("export", "{b}", "--format", "csv"),
    ],
    ids=["report", "compare", "export"],
)
def test_hostile_files_are_listed_and_cost_little(tmp_path, command):
    a, b, clean = _good(tmp_path, "A"), _good(tmp_path, "B"), _good(tmp_path, "C")
    reasons = _hostile(b)

    def argv(session: Path) -> list[str]:
        names = {"a": str(a), "b": str(session), "out": str(tmp_path / f"out-{session.name}")}
        return [part.format(**names) for part in command]

    baseline, clean_mb = _peak_rss_mb(*argv(clean))
    assert baseline.returncode == 0, baseline.stderr
    done, hostile_mb = _peak_rss_mb(*argv(b))
    assert done.returncode == 0, done.stderr
    for name, reason in reasons.items():
        assert f"unreadable: {b / name}: {reason}" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr
    assert hostile_mb - clean_mb < 300, f"{hostile_mb:.0f} MB against {clean_mb:.0f} MB clean"


def _written(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "r.json"
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        ("[" * 40 + "]" * 40, "nested deeper than 32 levels"),
        ('{"a":' * 40 + "1" + "}" * 40, "nested deeper than 32 levels"),
        ("[" + ",".join(["0"] * 300_000) + "]", "holds more than 250,000 values"),
        (b"\xff\xfe{}", "not UTF-8 text"),
        ("{", "not valid JSON"),
    ],
    ids=["deep-list", "deep-object", "many-values", "not-utf8", "truncated"],
)
def test_each_limit_names_itself(tmp_path, content, reason):
    with pytest.raises(InvalidFile, match=reason):
        store.read_record(_written(tmp_path, content))


def test_a_directory_and_a_link_to_a_growing_file_are_refused(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(InvalidFile, match=r"not a regular file \(a directory\)"):
        store.read_record(tmp_path / "dir.json")
    # /proc files say they are empty, regular files: the read is capped all the same.
    (tmp_path / "proc.json").symlink_to("/proc/self/status")
    with pytest.raises(InvalidFile, match="not valid JSON"):
        store.read_record(tmp_path / "proc.json")


def test_a_broken_link_is_unreadable_not_a_crash(tmp_path):
    session = _good(tmp_path, "S")
    (session / "gone.json").symlink_to(tmp_path / "nowhere")
    results = store.load_results([session])
    assert len(results.records) == 3
    (problem,) = results.unreadable
    assert problem.path.name == "gone.json" and "cannot read it" in problem.reason


def test_a_list_of_a_million_errors_costs_one(tmp_path):
    """pydantic stops at the first bad curve point instead of listing every one."""
    record = make_record("numpy", 3.0, 0)
    record["curve"] = [{"iteration": -1}] * 40_000
    with pytest.raises(InvalidFile) as caught:
        store.read_record(_written(tmp_path, json.dumps(record)))
    assert "curve.0." in str(caught.value) and "curve.1." not in str(caught.value)
    assert "more)" not in str(caught.value)


def test_a_session_file_that_is_a_fifo_is_refused_in_one_line(tmp_path):
    session = tmp_path / "S"
    session.mkdir()
    os.mkfifo(session / "session.json")
    done = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--resume", str(session)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not a regular file (a FIFO)" in done.stderr and "Traceback" not in done.stderr


def test_a_copied_record_is_listed_and_counted_once(tmp_path, capsys):
    import shutil

    from harness.cli import main

    runs = [make_record("numpy", t, i) for i, t in enumerate([1.0, 2.0])]
    session = make_session(tmp_path, "s", runs)
    shutil.copy(session / "numpy-0.json", session / "numpy-copy.json")
    assert main(["export", "s", "--results-dir", str(tmp_path), "--format", "json"]) == 0
    captured = capsys.readouterr()
    (row,) = json.loads(captured.out)
    assert row["runs"] == 2  # not 3
    assert "counted once:" in captured.err and "numpy-copy.json" in captured.err
    assert "the same run as numpy-0.json" in captured.err


def _bomb(path: Path, header: bytes, expanded: int) -> None:
    """A gzip file of ``header`` and then zeros to about ``expanded`` bytes, made of one member
    compressed once and repeated (gzip readers join members): 2.3 GB in about 2.3 MB."""
    import gzip

    zeros = gzip.compress(bytes(2**24), compresslevel=9)
    with path.open("wb") as out:
        out.write(gzip.compress(header))
        for _ in range(expanded // 2**24):
            out.write(zeros)


MNIST_IMAGES_HEADER = bytes.fromhex("00000803") + b"".join(
    n.to_bytes(4, "big") for n in (60_000, 28, 28)
)


@pytest.mark.parametrize(
    ("header", "message"),
    [
        # The header MNIST's training images have, then far more bytes than it declares.
        (MNIST_IMAGES_HEADER, "has trailing bytes: it runs past the 47,040,016 bytes"),
        # A header that declares the whole bomb.
        (
            bytes.fromhex("00000803") + b"".join(n.to_bytes(4, "big") for n in (3_000_000, 28, 28)),
            "its IDX header declares 2,352,000,016 bytes (3000000, 28, 28), more than the "
            "47,040,016",
        ),
        (b"", "wrong magic number 0x00000000"),  # zeros all the way
    ],
    ids=["past-its-header", "header-declares-it", "no-header"],
)
def test_a_gzip_bomb_in_the_data_folder_is_refused_in_bounded_time_and_memory(
    tmp_path, header, message
):
    """The bomb of the issue (2.2 MB expanding to 2.3 GB, named like MNIST's training images)
    is refused before it is expanded: in under a second and within a few MB of an intact file."""
    import time
    import tracemalloc

    from harness import data
    from harness.errors import DataError
    from tests.helpers import write_dataset

    write_dataset(tmp_path, gz=True)
    bomb = tmp_path / "train-images-idx3-ubyte.gz"
    _bomb(bomb, header, 2_300_000_000 if header else 200 * 2**20)
    tracemalloc.start()
    started = time.process_time()
    try:
        with pytest.raises(DataError) as refused:
            data.locate("mnist", tmp_path, download=False)
        spent = time.process_time() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert str(refused.value).startswith(f"{bomb}: ") and message in str(refused.value)
    assert spent < 2.0  # CPU seconds: the bound is the declared size, never the expansion
    assert peak < 47_040_016 + 16 * 2**20  # an intact file's bytes and a few MB


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.symlink_to("/dev/zero"), "not a regular file (a character device)"),
        (lambda p: os.mkfifo(p), "not a regular file (a FIFO)"),
        (lambda p: p.write_bytes(b"# " + b"x" * 2**21 + b"\n"), "larger than 1,048,576 bytes"),
        (lambda p: p.write_bytes(b"lr = 0.1\n\xff\xfe"), "not UTF-8 text"),
    ],
    ids=["dev-zero", "fifo", "huge", "not-utf8"],
)
@pytest.mark.parametrize("option", ["--spec", "--backend-cmds"])
def test_a_small_file_the_user_names_is_read_at_bounded_cost(
    tmp_path, capsys, make, message, option
):
    """--spec and --backend-cmds pointed at /dev/zero, a FIFO or a huge file: one line at once."""
    from harness.cli import main

    path = tmp_path / "job.toml"
    make(path)
    args = ["run", option, str(path), "--results-dir", str(tmp_path / "r")]
    if option == "--spec":
        args += ["--backend", "numpy"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {option} {path}: {message}"), err
    assert len(err.splitlines()) == 1
