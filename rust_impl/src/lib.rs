//! The book's two-layer MLP in Rust (ndarray + gemm), exposed to Python as `mlp_bench_rust`.
//!
//! The core (`layers`, `net`) is plain Rust and tested with `cargo test`; the PyO3 bindings are
//! compiled only with the `python` feature, which maturin turns on.

pub mod aligned;
pub mod kernel;
pub mod layers;
pub mod linalg;
pub mod net;
pub mod pages;
pub mod plain;
pub mod sparse;
pub mod team;
pub mod trainset;

/// "release" or "debug": the harness records it and flags debug builds, which run many times
/// slower.
pub const BUILD_PROFILE: &str = if cfg!(debug_assertions) {
    "debug"
} else {
    "release"
};

#[cfg(feature = "python")]
mod python {
    use numpy::{IntoPyArray, PyArray1, PyArray2, PyReadonlyArray1, PyReadonlyArray2};
    use pyo3::exceptions::PyValueError;
    use pyo3::prelude::*;
    use pyo3::types::PyDict;

    use ndarray::{Ix2, IxDyn};

    use crate::net::{InitParams, NetError, TwoLayerNet};
    use crate::plain::PlainNet;

    fn value_error(err: NetError) -> PyErr {
        PyValueError::new_err(err.0)
    }

    fn init_params<T: numpy::Element + Copy>(
        w1: PyReadonlyArray2<T>,
        b1: PyReadonlyArray1<T>,
        w2: PyReadonlyArray2<T>,
        b2: PyReadonlyArray1<T>,
    ) -> InitParams<T> {
        InitParams {
            w1: w1.as_array().to_owned(),
            b1: b1.as_array().to_owned(),
            w2: w2.as_array().to_owned(),
            b2: b2.as_array().to_owned(),
        }
    }

    /// A Python class around one of the nets, for one float type. Every class has the methods
    /// the harness calls (`train_steps`, `predict`, `params`, profiling); the constructor, and
    /// any extra methods, are the caller's: `pymethods` sees them once this macro has expanded.
    macro_rules! net_class {
        ($class:ident, $pyname:literal, $t:ty, $net:ty, { $($methods:tt)* }) => {
            #[pyclass(name = $pyname, module = "mlp_bench_rust")]
            pub struct $class {
                net: $net,
            }

            #[pymethods]
            impl $class {
                $($methods)*

                /// One SGD step per row of `batch_indices` (int32, shape (k, batch)), with the
                /// GIL released; returns the mean loss.
                fn train_steps(
                    &mut self,
                    py: Python<'_>,
                    batch_indices: PyReadonlyArray2<i32>,
                ) -> PyResult<f64> {
                    let indices = batch_indices.as_array();
                    let net = &mut self.net;
                    py.detach(|| net.train_steps(indices)).map_err(value_error)
                }

                /// Class ids (int64) for the rows of `x`.
                fn predict<'py>(
                    &self,
                    py: Python<'py>,
                    x: PyReadonlyArray2<'py, $t>,
                ) -> PyResult<Bound<'py, PyArray1<i64>>> {
                    let x = x.as_array();
                    let net = &self.net;
                    let classes = py.detach(|| net.predict(x)).map_err(value_error)?;
                    Ok(classes.into_pyarray(py))
                }

                /// Time each phase of the following steps.
                fn enable_profiling(&mut self) {
                    self.net.enable_profiling();
                }

                /// Seconds per phase since profiling was enabled; None when it is off.
                fn phase_times<'py>(
                    &self,
                    py: Python<'py>,
                ) -> PyResult<Option<Bound<'py, PyDict>>> {
                    let Some(phases) = self.net.phase_times() else {
                        return Ok(None);
                    };
                    let dict = PyDict::new(py);
                    for (name, seconds) in phases {
                        dict.set_item(name, seconds)?;
                    }
                    Ok(Some(dict))
                }

                /// Copies of W1, b1, W2, b2.
                fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                    let params = self.net.params();
                    let dict = PyDict::new(py);
                    dict.set_item("W1", PyArray2::from_owned_array(py, params.w1))?;
                    dict.set_item("b1", PyArray1::from_owned_array(py, params.b1))?;
                    dict.set_item("W2", PyArray2::from_owned_array(py, params.w2))?;
                    dict.set_item("b2", PyArray1::from_owned_array(py, params.b2))?;
                    Ok(dict)
                }
            }
        };
    }

    /// The tuned net: the training set held as byte codes where it allows, each step split
    /// among `threads` threads of its own.
    macro_rules! tuned_class {
        ($class:ident, $pyname:literal, $t:ty) => {
            net_class!($class, $pyname, $t, TwoLayerNet<$t>, {
                /// Copies the initial parameters and the training set in (as one byte per pixel
                /// when it holds at most 256 distinct values); sizes every buffer.
                #[new]
                #[pyo3(signature = (w1, b1, w2, b2, train_x, train_y, lr, batch, threads))]
                #[allow(clippy::too_many_arguments)]
                fn new(
                    w1: PyReadonlyArray2<$t>,
                    b1: PyReadonlyArray1<$t>,
                    w2: PyReadonlyArray2<$t>,
                    b2: PyReadonlyArray1<$t>,
                    train_x: PyReadonlyArray2<$t>,
                    train_y: PyReadonlyArray1<i64>,
                    lr: f64,
                    batch: usize,
                    threads: usize,
                ) -> PyResult<Self> {
                    let init = init_params(w1, b1, w2, b2);
                    let x = train_x.as_array().to_owned();
                    TwoLayerNet::new(init, x, train_y.as_array(), lr, batch, threads)
                        .map(|net| Self { net })
                        .map_err(value_error)
                }

                /// Threads a step is split among: the budget, capped by the batch size.
                #[getter]
                fn threads(&self) -> usize {
                    self.net.threads()
                }

                /// The crates computing the first layer's products: (forward, update).
                #[getter]
                fn libraries(&self) -> (&'static str, &'static str) {
                    self.net.libraries()
                }

                /// The input entries the first layer's products took, over all steps trained
                /// (see `TwoLayerNet::inputs_multiplied`).
                #[getter]
                fn inputs_multiplied(&self) -> u64 {
                    self.net.inputs_multiplied()
                }

                /// How the training images are held (byte codes or as handed over).
                #[getter]
                fn inputs_held_as(&self) -> &'static str {
                    self.net.inputs_held_as()
                }
            });
        };
    }

    /// The plain ndarray ports (plain.rs), `Array2` or `ArrayD` between the layers.
    macro_rules! plain_class {
        ($class:ident, $pyname:literal, $t:ty, $dim:ty) => {
            net_class!($class, $pyname, $t, PlainNet<$t, $dim>, {
                /// Copies the initial parameters and the training set in.
                #[new]
                #[pyo3(signature = (w1, b1, w2, b2, train_x, train_y, lr, batch))]
                #[allow(clippy::too_many_arguments)]
                fn new(
                    w1: PyReadonlyArray2<$t>,
                    b1: PyReadonlyArray1<$t>,
                    w2: PyReadonlyArray2<$t>,
                    b2: PyReadonlyArray1<$t>,
                    train_x: PyReadonlyArray2<$t>,
                    train_y: PyReadonlyArray1<i64>,
                    lr: f64,
                    batch: usize,
                ) -> PyResult<Self> {
                    let init = init_params(w1, b1, w2, b2);
                    let x = train_x.as_array().to_owned();
                    PlainNet::new(init, x, train_y.as_array(), lr, batch)
                        .map(|net| Self { net })
                        .map_err(value_error)
                }
            });
        };
    }

    tuned_class!(Mlp32, "Mlp32", f32);
    tuned_class!(Mlp64, "Mlp64", f64);
    plain_class!(PlainNdarray32, "PlainNdarray32", f32, Ix2);
    plain_class!(PlainNdarray64, "PlainNdarray64", f64, Ix2);
    plain_class!(PlainNdarrayDyn32, "PlainNdarrayDyn32", f32, IxDyn);
    plain_class!(PlainNdarrayDyn64, "PlainNdarrayDyn64", f64, IxDyn);

    #[pymodule]
    fn mlp_bench_rust(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add_class::<Mlp32>()?;
        m.add_class::<Mlp64>()?;
        m.add_class::<PlainNdarray32>()?;
        m.add_class::<PlainNdarray64>()?;
        m.add_class::<PlainNdarrayDyn32>()?;
        m.add_class::<PlainNdarrayDyn64>()?;
        m.add("BUILD_PROFILE", crate::BUILD_PROFILE)?;
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        Ok(())
    }
}
