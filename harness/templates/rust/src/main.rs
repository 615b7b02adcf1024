//! __NAME__: a backend for mlp-bench in Rust, speaking the process protocol
//! (docs/process-protocol.md in the mlp-bench repository) on stdin and stdout.
//!
//! The book's network (Deep Learning from Scratch, ch05) written plainly: Affine -> ReLU ->
//! Affine -> SoftmaxWithLoss, plain SGD, float32, one thread, the standard library only.
//! Make it yours, then check it still does the same job:
//!
//!     cargo build --release
//!     python -m harness verify --backend-cmd __NAME__=./target/release/__NAME__ --timeout 60

use std::collections::HashMap;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};

struct Net {
    rows: usize,
    features: usize,
    hidden: usize,
    classes: usize,
    batch: usize,
    lr: f32,
    train_x: Vec<f32>,
    train_y: Vec<i32>,
    w1: Vec<f32>,
    b1: Vec<f32>,
    w2: Vec<f32>,
    b2: Vec<f32>,
    predict_cache: Option<(String, Vec<f32>)>, // files never change under one path
}

fn floats(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn ints(bytes: &[u8]) -> Vec<i32> {
    bytes
        .chunks_exact(4)
        .map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect()
}

fn read_floats(path: &str, count: usize) -> Result<Vec<f32>, String> {
    let bytes = fs::read(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    if bytes.len() != count * 4 {
        return Err(format!(
            "{path} holds {} of the {count} values expected",
            bytes.len() / 4
        ));
    }
    Ok(floats(&bytes))
}

/// out (m x cols) = x (m x inner) . w (inner x cols) + b
fn affine(x: &[f32], w: &[f32], b: &[f32], m: usize, inner: usize, cols: usize) -> Vec<f32> {
    let mut out = Vec::with_capacity(m * cols);
    for r in 0..m {
        let mut row = b.to_vec();
        for k in 0..inner {
            let xv = x[r * inner + k];
            if xv != 0.0 {
                for (o, wv) in row.iter_mut().zip(&w[k * cols..(k + 1) * cols]) {
                    *o += xv * wv;
                }
            }
        }
        out.extend(row);
    }
    out
}

impl Net {
    fn setup(args: &str) -> Result<Net, String> {
        let fields: HashMap<&str, &str> = args
            .split(' ')
            .filter_map(|kv| kv.split_once('='))
            .collect();
        let get = |key: &str| fields.get(key).copied().ok_or(format!("setup needs {key}"));
        let number = |key: &str| -> Result<usize, String> {
            get(key)?
                .parse()
                .map_err(|_| format!("setup's {key} is not a number"))
        };
        if get("dtype")? != "float32" {
            return Err(format!(
                "__NAME__ computes in float32 only, not {}",
                get("dtype")?
            ));
        }
        let dir = get("dir")?;
        let (rows, features) = (number("rows")?, number("features")?);
        let (hidden, classes) = (number("hidden")?, number("classes")?);
        let lr: f32 = get("lr")?
            .parse()
            .map_err(|_| "setup's lr is not a number".to_string())?;
        let y = fs::read(format!("{dir}/train_y.bin")).map_err(|e| format!("train_y.bin: {e}"))?;
        Ok(Net {
            rows,
            features,
            hidden,
            classes,
            batch: number("batch")?,
            lr,
            train_x: read_floats(&format!("{dir}/train_x.bin"), rows * features)?,
            train_y: ints(&y),
            w1: read_floats(&format!("{dir}/W1.bin"), features * hidden)?,
            b1: read_floats(&format!("{dir}/b1.bin"), hidden)?,
            w2: read_floats(&format!("{dir}/W2.bin"), hidden * classes)?,
            b2: read_floats(&format!("{dir}/b2.bin"), classes)?,
            predict_cache: None,
        })
    }

    /// One SGD step on the rows `idx`; returns the batch-mean cross-entropy.
    fn step(&mut self, idx: &[i32]) -> f64 {
        let (b, f, h, c) = (self.batch, self.features, self.hidden, self.classes);
        let mut x = Vec::with_capacity(b * f);
        for &i in idx {
            x.extend_from_slice(&self.train_x[i as usize * f..(i as usize + 1) * f]);
        }
        let mut hid = affine(&x, &self.w1, &self.b1, b, f, h);
        hid.iter_mut().for_each(|v| *v = v.max(0.0)); // ReLU
        let mut p = affine(&hid, &self.w2, &self.b2, b, h, c);
        let mut loss = 0.0f64;
        for (r, &i) in idx.iter().enumerate() {
            // softmax, cross-entropy, and its gradient (p - onehot) / b
            let row = &mut p[r * c..(r + 1) * c];
            let top = row.iter().cloned().fold(f32::NEG_INFINITY, f32::max);
            row.iter_mut().for_each(|v| *v = (*v - top).exp());
            let sum: f32 = row.iter().sum();
            row.iter_mut().for_each(|v| *v /= sum);
            let y = self.train_y[i as usize] as usize;
            loss -= (row[y] as f64 + 1e-7).ln();
            row[y] -= 1.0;
            row.iter_mut().for_each(|v| *v /= b as f32);
        }
        // dh = dlogits . W2^T through the ReLU, then each parameter steps down its gradient
        let mut dh = vec![0.0f32; b * h];
        for r in 0..b {
            for k in 0..h {
                if hid[r * h + k] > 0.0 {
                    dh[r * h + k] = (0..c).map(|j| p[r * c + j] * self.w2[k * c + j]).sum();
                }
            }
        }
        for k in 0..h {
            for j in 0..c {
                let g: f32 = (0..b).map(|r| hid[r * h + k] * p[r * c + j]).sum();
                self.w2[k * c + j] -= self.lr * g;
            }
        }
        for j in 0..c {
            self.b2[j] -= self.lr * (0..b).map(|r| p[r * c + j]).sum::<f32>();
        }
        for i in 0..f {
            for k in 0..h {
                let g: f32 = (0..b).map(|r| x[r * f + i] * dh[r * h + k]).sum();
                self.w1[i * h + k] -= self.lr * g;
            }
        }
        for k in 0..h {
            self.b1[k] -= self.lr * (0..b).map(|r| dh[r * h + k]).sum::<f32>();
        }
        loss / b as f64
    }

    fn predict(&mut self, path: &str, rows: usize) -> Result<Vec<i32>, String> {
        let cached = matches!(&self.predict_cache, Some((p, x)) if p == path && x.len() == rows * self.features);
        if !cached {
            self.predict_cache = Some((path.to_string(), read_floats(path, rows * self.features)?));
        }
        let x = &self.predict_cache.as_ref().expect("just read").1;
        let mut hid = affine(x, &self.w1, &self.b1, rows, self.features, self.hidden);
        hid.iter_mut().for_each(|v| *v = v.max(0.0));
        let logits = affine(&hid, &self.w2, &self.b2, rows, self.hidden, self.classes);
        Ok(logits
            .chunks_exact(self.classes)
            .map(|row| {
                (0..row.len()).fold(0, |best, j| if row[j] > row[best] { j } else { best }) as i32
            })
            .collect())
    }
}

fn main() {
    let mut input = BufReader::new(io::stdin().lock());
    let mut out = io::stdout().lock();
    let mut net: Option<Net> = None;
    let mut line = String::new();
    loop {
        line.clear();
        if input.read_line(&mut line).unwrap_or(0) == 0 {
            return; // end of file: the harness is gone
        }
        let (verb, args) = line
            .trim_end()
            .split_once(' ')
            .unwrap_or((line.trim_end(), ""));
        let answer: Result<(), String> = match (verb, net.as_mut()) {
            ("quit", _) => return,
            ("setup", _) => Net::setup(args).map(|n| {
                net = Some(n);
                writeln!(out, "ready __NAME__ (plain Rust, float32, one thread)").unwrap();
            }),
            (_, None) => Err(format!("'{verb}' before setup")),
            ("train", Some(n)) => (|| {
                let (k, b) = args
                    .split_once(' ')
                    .ok_or("train needs 'train STEPS BATCH'")?;
                let k: usize = k.parse().map_err(|_| "train's STEPS is not a number")?;
                if b.parse() != Ok(n.batch) {
                    return Err(format!(
                        "train needs 'train STEPS {}', got 'train {args}'",
                        n.batch
                    ));
                }
                let mut raw = vec![0u8; k * n.batch * 4];
                input
                    .read_exact(&mut raw)
                    .map_err(|_| "stdin ended inside the batch indices")?;
                let idx = ints(&raw);
                if let Some(bad) = idx.iter().find(|&&i| i < 0 || i as usize >= n.rows) {
                    return Err(format!("batch index {bad} is outside 0..{}", n.rows - 1));
                }
                let total: f64 = idx.chunks_exact(n.batch).map(|rows| n.step(rows)).sum();
                writeln!(out, "loss {:.9e}", total / k as f64).unwrap(); // a float32 read back exactly
                Ok(())
            })(),
            ("predict", Some(n)) => (|| {
                let (path, rows) = args
                    .rsplit_once(' ')
                    .ok_or("predict needs 'predict FILE ROWS'")?;
                let rows: usize = rows.parse().map_err(|_| "predict's ROWS is not a number")?;
                let ids = n.predict(path, rows)?;
                writeln!(out, "ids {rows}").unwrap();
                ids.iter()
                    .for_each(|i| out.write_all(&i.to_le_bytes()).unwrap());
                Ok(())
            })(),
            ("params", Some(n)) => {
                writeln!(out, "params").unwrap();
                for values in [&n.w1, &n.b1, &n.w2, &n.b2] {
                    values
                        .iter()
                        .for_each(|v| out.write_all(&v.to_le_bytes()).unwrap());
                }
                Ok(())
            }
            (other, Some(_)) => Err(format!("unknown request '{other}'")),
        };
        if let Err(message) = answer {
            writeln!(out, "error {message}").unwrap();
            out.flush().unwrap();
            std::process::exit(1);
        }
        out.flush().unwrap(); // every answer at once: the harness waits for it
    }
}
