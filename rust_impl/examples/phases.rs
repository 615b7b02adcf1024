//! Where a training step spends its time, phase by phase, on MNIST-shaped random data (bytes
//! scaled by 1/255, four pixels in five zero, so the images are held as MNIST's are).
//!
//!     cargo run --release --example phases -- [THREADS] [--same-batch] [--json]
//!
//! `--same-batch` trains on one batch every step, so its rows stay in the caches: the step as it
//! would run if gathering a batch never waited on memory. Each thread's phases in a column of
//! its own. `--json`: one line, for benchmarks/rust_speed.py (`us_per_step`: the first
//! thread's, `per_thread`: each thread's).

use std::time::Instant;

use mlp_bench_rust::net::{InitParams, TwoLayerNet, PHASES};
use ndarray::{Array1, Array2};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let flag = |name: &str| args.iter().any(|a| a == name);
    let threads: usize = args
        .iter()
        .find(|a| !a.starts_with("--"))
        .map_or(1, |t| t.parse().expect("threads: a whole number"));
    let same_batch = flag("--same-batch");
    let (rows, features, hidden, classes, batch, steps) = (60_000, 784, 50, 10, 100, 3_000);
    let mut state = 12345u64;
    let mut random = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    // About four pixels in five are 0, as in MNIST.
    let train_x = Array2::from_shape_simple_fn((rows, features), || {
        let r = random();
        if r < 0.8 {
            0.0
        } else {
            ((r - 0.8) * 1275.0).floor() / 255.0
        }
    });
    let train_y = Array1::from_iter((0..rows).map(|i| (i % classes) as i64));
    let init = InitParams {
        w1: Array2::from_shape_simple_fn((features, hidden), || (random() - 0.5) * 0.02),
        b1: Array1::zeros(hidden),
        w2: Array2::from_shape_simple_fn((hidden, classes), || (random() - 0.5) * 0.02),
        b2: Array1::zeros(classes),
    };
    let mut net =
        TwoLayerNet::new(init, train_x, train_y.view(), 0.1, batch, threads).expect("valid set-up");
    let mut indices =
        Array2::from_shape_simple_fn((steps, batch), || (random() * rows as f32) as i32);
    if same_batch {
        let first = indices.row(0).to_owned();
        for mut row in indices.rows_mut() {
            row.assign(&first);
        }
    }
    net.enable_profiling();
    let started = Instant::now();
    for chunk in indices.axis_chunks_iter(ndarray::Axis(0), 600) {
        net.train_steps(chunk).expect("valid indices");
    }
    let wall = started.elapsed().as_secs_f64();
    let per_step = |seconds: f64| seconds / steps as f64 * 1e6;
    let threads = net.thread_phase_times().expect("profiling is on");
    if flag("--json") {
        let object = |phases: &[(&str, f64)]| -> String {
            let pairs: Vec<String> = phases
                .iter()
                .map(|(name, seconds)| format!("\"{name}\": {:.2}", per_step(*seconds)))
                .collect();
            format!("{{{}}}", pairs.join(", "))
        };
        let per_thread: Vec<String> = threads.iter().map(|p| object(p)).collect();
        println!(
            "{{\"threads\": {}, \"steps\": {steps}, \"same_batch\": {same_batch}, \"us_per_step\": {}, \"per_thread\": [{}], \"wall_us_per_step\": {:.2}}}",
            net.threads(),
            object(&threads[0]),
            per_thread.join(", "),
            per_step(wall)
        );
        return;
    }
    let (forward, update) = net.libraries();
    println!(
        "threads {}, inputs held as: {}; first layer's forward by {forward}, update by {update}{}",
        net.threads(),
        net.inputs_held_as(),
        if same_batch {
            "; the same batch every step"
        } else {
            ""
        }
    );
    let header: Vec<String> = (1..=threads.len())
        .map(|t| format!("{:>17}", format!("thread {t}")))
        .collect();
    println!("{:>10}  {}", "µs/step", header.join(""));
    for (phase, name) in PHASES.iter().enumerate() {
        let cells: Vec<String> = threads
            .iter()
            .map(|p| {
                let seconds = p[phase].1;
                format!(
                    "{:8.1} {:5.1} %  ",
                    per_step(seconds),
                    seconds / wall * 100.0
                )
            })
            .collect();
        println!("{name:>10}: {}", cells.join("").trim_end());
    }
    println!(
        "{:>10}: {:8.1} µs/step → {:.2} s per 10,000 steps",
        "wall",
        per_step(wall),
        wall / steps as f64 * 1e4
    );
}
