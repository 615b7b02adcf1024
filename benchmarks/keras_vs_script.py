"""Benchmark: the ``keras`` backend against plain TensorFlow scripts doing the same training.

    python benchmarks/keras_vs_script.py [--data-dir DIR] [--repeats 3] [--threads 1]

All in this one process, interleaved, over the harness's batch stream and initial weights:
  script-loop: one tf.function running the steps of a 600-step chunk in a graph loop (what the
               backend does, without the harness around it);
  script-step: the common custom loop, one tf.function call per step from Python;
  backend:     KerasBackend.train_steps over the same chunks.
The Keras issue's bar: backend ≤ 1.1 × the plain script.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from kept import keep


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", type=Path, default=None, help="keep the numbers in this file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(args.threads)
    tf.config.threading.set_inter_op_parallelism_threads(args.threads)

    from harness import data
    from harness.spec import Spec
    from harness.work.plan import make_plan
    from impls.keras_tf import KerasBackend

    spec = Spec()
    files = data.locate(spec.dataset, args.data_dir)
    dataset = data.load(files, spec.dtype)
    plan = make_plan(spec, files.n_features, data.N_CLASSES, files.n_train)
    chunks = [plan.batches[start:end] for start, end in spec.eval_spans()]

    def fresh_model():
        model, loss_fn, optimizer = KerasBackend()._build_model(spec, plan.init)
        optimizer.build(model.trainable_variables)
        return model, loss_fn, optimizer

    def script(per_step: bool) -> float:
        model, loss_fn, optimizer = fresh_model()
        weights = model.trainable_variables
        train_x = tf.constant(dataset.train_x)
        train_y = tf.constant(dataset.train_y)

        def one_step(rows):
            x, t = tf.gather(train_x, rows), tf.gather(train_y, rows)
            with tf.GradientTape() as tape:
                loss = loss_fn(t, model(x, training=True))
            optimizer.apply_gradients(zip(tape.gradient(loss, weights), weights, strict=True))
            return loss

        step = tf.function(one_step)

        @tf.function
        def loop(indices):
            for i in tf.range(tf.shape(indices)[0]):
                one_step(indices[i])

        (step if per_step else loop).get_concrete_function(
            tf.TensorSpec([spec.batch] if per_step else [None, spec.batch], tf.int32)
        )
        started = time.perf_counter()
        for chunk in chunks:
            if per_step:
                for rows in chunk:
                    step(rows)
            else:
                loop(chunk)
        return time.perf_counter() - started

    def backend() -> float:
        b = KerasBackend()
        b.setup(spec, dataset.train_x, dataset.train_y, plan.init)
        total = 0.0
        for chunk in chunks:
            started = time.perf_counter()
            b.train_steps(chunk)
            total += time.perf_counter() - started
        return total

    times: dict[str, list[float]] = {"script-loop": [], "script-step": [], "backend": []}
    for repeat in range(args.repeats):
        times["script-loop"].append(script(per_step=False))
        times["backend"].append(backend())
        times["script-step"].append(script(per_step=True))
        print(f"repeat {repeat + 1}: " + ", ".join(f"{k} {v[-1]:.2f} s" for k, v in times.items()))
    medians = {k: statistics.median(v) for k, v in times.items()}
    print("median: " + ", ".join(f"{k} {v:.2f} s" for k, v in medians.items()))
    print(
        f"backend / script-loop = {medians['backend'] / medians['script-loop']:.3f}; "
        f"backend / script-step = {medians['backend'] / medians['script-step']:.3f} "
        f"({args.threads} thread{'s' if args.threads > 1 else ''}; bar: ≤ 1.1)"
    )
    keep(
        args.json,
        "keras_vs_script",
        {
            "threads": args.threads,
            "times_s": times,
            "medians_s": medians,
            "backend_over_script_loop": medians["backend"] / medians["script-loop"],
            "backend_over_script_step": medians["backend"] / medians["script-step"],
        },
    )


if __name__ == "__main__":
    main()
