//! Where one training step spends its time, phase by phase, on MNIST-sized random data.
//!
//!     cargo run --release --example phases [threads]

use std::time::Instant;

use mlp_bench_rust::layers::{Affine, Layer, Relu, SoftmaxWithLoss};
use ndarray::{Array1, Array2};

fn main() {
    let threads: usize = std::env::args()
        .nth(1)
        .map_or(1, |t| t.parse().expect("threads"));
    let (rows, features, hidden, classes, batch, steps) = (60_000, 784, 50, 10, 100, 3_000);
    let mut state = 12345u64;
    let mut random = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (state >> 40) as f32 / (1u64 << 24) as f32
    };
    let train_x = Array2::from_shape_simple_fn((rows, features), &mut random);
    let labels: Vec<usize> = (0..rows).map(|i| i % classes).collect();
    let w1 = Array2::from_shape_simple_fn((features, hidden), || (random() - 0.5) * 0.02);
    let w2 = Array2::from_shape_simple_fn((hidden, classes), || (random() - 0.5) * 0.02);
    let mut a1 = Affine::new(w1, Array1::zeros(hidden), batch, false, threads);
    let mut relu = Relu::new(batch, hidden);
    let mut a2 = Affine::new(w2, Array1::zeros(classes), batch, true, 1);
    let mut last = SoftmaxWithLoss::new(batch, classes);
    let mut x = Array2::zeros((batch, features));
    let mut t = vec![0usize; batch];
    let names = [
        "gather",
        "affine1 fwd",
        "relu fwd",
        "affine2 fwd",
        "softmax+loss",
        "softmax bwd",
        "affine2 bwd",
        "relu bwd",
        "affine1 bwd",
        "update",
    ];
    let mut spent = [0.0f64; 10];
    for _ in 0..steps {
        let mut clock = Instant::now();
        let mut lap = |phase: usize, clock: &mut Instant| {
            spent[phase] += clock.elapsed().as_secs_f64();
            *clock = Instant::now();
        };
        for (i, (mut row, label)) in x.rows_mut().into_iter().zip(t.iter_mut()).enumerate() {
            let index = ((random() * rows as f32) as usize + i) % rows;
            row.assign(&train_x.row(index));
            *label = labels[index];
        }
        lap(0, &mut clock);
        a1.forward(x.view());
        lap(1, &mut clock);
        relu.forward(a1.output());
        lap(2, &mut clock);
        a2.forward(relu.output());
        lap(3, &mut clock);
        last.forward(a2.output(), &t);
        lap(4, &mut clock);
        last.backward(&t);
        lap(5, &mut clock);
        a2.backward(relu.output(), last.input_grad());
        lap(6, &mut clock);
        relu.backward(a1.output(), a2.input_grad());
        lap(7, &mut clock);
        a1.backward(x.view(), relu.input_grad());
        lap(8, &mut clock);
        a1.update(0.1);
        a2.update(0.1);
        lap(9, &mut clock);
    }
    let total: f64 = spent.iter().sum();
    for (name, seconds) in names.iter().zip(spent) {
        println!(
            "{name:>14}: {:7.1} µs/step  {:5.1} %",
            seconds / steps as f64 * 1e6,
            seconds / total * 100.0
        );
    }
    println!(
        "{:>14}: {:7.1} µs/step → {:.2} s per 10,000 steps",
        "total",
        total / steps as f64 * 1e6,
        total / steps as f64 * 1e4
    );
}
