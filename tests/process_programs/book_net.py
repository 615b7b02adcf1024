"""The process protocol's other side in Python: the book's net, and the ways a program breaks it.

``python book_net.py`` speaks the protocol correctly (docs/process-protocol.md);
``python book_net.py FAULT`` breaks it in one way, named after the step where it happens:

  garbage-exit   prints a line of nonsense and exits before answering setup
  exit-in-train  answers setup, then exits with status 3 at the first train request
  garbage-loss   answers a train request with 'loss banana'
  error-reply    answers setup with 'error …'
  short-ids      announces the right number of ids but sends half of them
  wrong-count    announces one id fewer than asked
  no-newline     answers setup with 5000 bytes and no newline
  no-timing      a correct program that leaves out the optional seconds of its loss reply
  negative-loss  trains, then answers 'loss -1' (no cross-entropy is negative)
  negative-time  trains, then says its steps took -0.5 s
  reply-early    answers each train request at once, then trains (and takes 0.1 s more) before
                 it reads the next request: the work lands in whatever the harness asks next
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

FAULT = sys.argv[1] if len(sys.argv) > 1 else ""
out = sys.stdout.buffer


def reply(text: str, payload: bytes = b"") -> None:
    out.write(text.encode() + b"\n" + payload)
    out.flush()


def main() -> int:
    net: dict[str, np.ndarray] = {}
    conf: dict[str, str] = {}
    stdin = sys.stdin.buffer
    while line := stdin.readline():
        verb, _, args = line.decode().strip().partition(" ")
        if verb == "quit":
            return 0
        if verb == "setup":
            if FAULT == "garbage-exit":
                reply("HELLO I AM NOT A PROTOCOL")
                return 0
            if FAULT == "error-reply":
                reply("error this program needs a GPU")
                continue
            if FAULT == "no-newline":
                out.write(b"r" * 5000)
                out.flush()
                time.sleep(30)
            conf = dict(pair.split("=", 1) for pair in args.split())
            folder, dtype = Path(conf["dir"]), np.dtype(conf["dtype"])
            rows, features = int(conf["rows"]), int(conf["features"])
            hidden, classes = int(conf["hidden"]), int(conf["classes"])
            net["x"] = np.fromfile(folder / "train_x.bin", dtype).reshape(rows, features)
            net["t"] = np.fromfile(folder / "train_y.bin", "<i4")
            shapes = {"W1": (features, hidden), "b1": (hidden,), "W2": (hidden, classes)}
            for key, shape in {**shapes, "b2": (classes,)}.items():
                net[key] = np.fromfile(folder / f"{key}.bin", dtype).reshape(shape)
            reply("ready book_net.py")
        elif verb == "train":
            if FAULT == "exit-in-train":
                return 3
            steps, batch = map(int, args.split())
            indices = np.frombuffer(stdin.read(steps * batch * 4), "<i4").reshape(steps, batch)
            if FAULT == "reply-early":
                reply("loss 1.0")  # a loss it has not computed yet
                for rows in indices:
                    step(net, rows, float(conf["lr"]))
                time.sleep(0.1)
                continue
            started, total = time.perf_counter(), 0.0
            for rows in indices:
                total += step(net, rows, float(conf["lr"]))
            if FAULT == "garbage-loss":
                reply("loss banana")
            elif FAULT == "no-timing":
                reply(f"loss {total / steps!r}")
            elif FAULT == "negative-loss":
                reply("loss -1 0.001")
            elif FAULT == "negative-time":
                reply(f"loss {total / steps!r} -0.5")
            else:
                reply(f"loss {total / steps!r} {time.perf_counter() - started:.9f}")
        elif verb == "predict":
            path, rows = args.rsplit(" ", 1)
            x = np.fromfile(path, net["W1"].dtype).reshape(int(rows), -1)
            hidden = np.maximum(x @ net["W1"] + net["b1"], 0)
            ids = (hidden @ net["W2"] + net["b2"]).argmax(axis=1).astype("<i4")
            if FAULT == "short-ids":
                reply(f"ids {rows}", ids[: len(ids) // 2].tobytes())
                return 0
            if FAULT == "wrong-count":
                reply(f"ids {int(rows) - 1}", ids[:-1].tobytes())
                continue
            reply(f"ids {rows}", ids.tobytes())
        elif verb == "params":
            reply("params", b"".join(net[k].tobytes() for k in ("W1", "b1", "W2", "b2")))
        else:
            reply(f"error unknown request {verb!r}")
    return 0


def step(net: dict[str, np.ndarray], rows: np.ndarray, lr: float) -> float:
    """One SGD step of the book's net on the given rows; returns the batch-mean loss."""
    x, t = net["x"][rows], net["t"][rows]
    hidden = np.maximum(x @ net["W1"] + net["b1"], 0)
    logits = hidden @ net["W2"] + net["b2"]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    y = exp / exp.sum(axis=1, keepdims=True)
    loss = -np.log(y[np.arange(len(t)), t] + 1e-7).mean()
    dy = y.copy()
    dy[np.arange(len(t)), t] -= 1
    dy /= len(t)
    dhidden = (dy @ net["W2"].T) * (hidden > 0)
    net["W2"] -= lr * (hidden.T @ dy)
    net["b2"] -= lr * dy.sum(axis=0)
    net["W1"] -= lr * (x.T @ dhidden)
    net["b1"] -= lr * dhidden.sum(axis=0)
    return float(loss)


if __name__ == "__main__":
    sys.exit(main())
