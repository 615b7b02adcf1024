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

    /// One Python class per float type, generated from the same generic core.
    macro_rules! mlp_class {
        ($class:ident, $pyname:literal, $t:ty) => {
            #[pyclass(name = $pyname, module = "mlp_bench_rust")]
            pub struct $class {
                net: TwoLayerNet<$t>,
            }

            #[pymethods]
            impl $class {
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
                    let init = InitParams {
                        w1: w1.as_array().to_owned(),
                        b1: b1.as_array().to_owned(),
                        w2: w2.as_array().to_owned(),
                        b2: b2.as_array().to_owned(),
                    };
                    let net = TwoLayerNet::new(
                        init,
                        train_x.as_array().to_owned(),
                        train_y.as_array(),
                        lr,
                        batch,
                        threads,
                    )
                    .map_err(value_error)?;
                    Ok(Self { net })
                }

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

                /// Time each phase (batch, forward, backward, update, wait) of the following
                /// steps.
                fn enable_profiling(&mut self) {
                    self.net.enable_profiling();
                }

                /// The first thread's seconds per phase since profiling was enabled; None when
                /// it is off.
                fn phase_times<'py>(
                    &self,
                    py: Python<'py>,
                ) -> PyResult<Option<Bound<'py, PyDict>>> {
                    phases_dict(py, self.net.phase_times())
                }

                /// Copies of W1, b1, W2, b2.
                fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                    params_dict(py, self.net.params())
                }
            }
        };
    }

    mlp_class!(Mlp32, "Mlp32", f32);
    mlp_class!(Mlp64, "Mlp64", f64);

    /// The plain ndarray ports (plain.rs): one class per float type and layer dimension.
    macro_rules! plain_class {
        ($class:ident, $pyname:literal, $t:ty, $dim:ty) => {
            #[pyclass(name = $pyname, module = "mlp_bench_rust")]
            pub struct $class {
                net: PlainNet<$t, $dim>,
            }

            #[pymethods]
            impl $class {
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
                    let init = InitParams {
                        w1: w1.as_array().to_owned(),
                        b1: b1.as_array().to_owned(),
                        w2: w2.as_array().to_owned(),
                        b2: b2.as_array().to_owned(),
                    };
                    let net = PlainNet::new(
                        init,
                        train_x.as_array().to_owned(),
                        train_y.as_array(),
                        lr,
                        batch,
                    )
                    .map_err(value_error)?;
                    Ok(Self { net })
                }

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

                /// Time each phase (batch, forward, backward, update) of the following steps.
                fn enable_profiling(&mut self) {
                    self.net.enable_profiling();
                }

                /// Seconds per phase since profiling was enabled; None when it is off.
                fn phase_times<'py>(
                    &self,
                    py: Python<'py>,
                ) -> PyResult<Option<Bound<'py, PyDict>>> {
                    phases_dict(py, self.net.phase_times())
                }

                /// Copies of W1, b1, W2, b2.
                fn params<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
                    params_dict(py, self.net.params())
                }
            }
        };
    }

    plain_class!(PlainNdarray32, "PlainNdarray32", f32, Ix2);
    plain_class!(PlainNdarray64, "PlainNdarray64", f64, Ix2);
    plain_class!(PlainNdarrayDyn32, "PlainNdarrayDyn32", f32, IxDyn);
    plain_class!(PlainNdarrayDyn64, "PlainNdarrayDyn64", f64, IxDyn);

    fn phases_dict<'py>(
        py: Python<'py>,
        phases: Option<Vec<(&'static str, f64)>>,
    ) -> PyResult<Option<Bound<'py, PyDict>>> {
        let Some(phases) = phases else {
            return Ok(None);
        };
        let dict = PyDict::new(py);
        for (name, seconds) in phases {
            dict.set_item(name, seconds)?;
        }
        Ok(Some(dict))
    }

    fn params_dict<'py, T: numpy::Element>(
        py: Python<'py>,
        params: InitParams<T>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let dict = PyDict::new(py);
        dict.set_item("W1", PyArray2::from_owned_array(py, params.w1))?;
        dict.set_item("b1", PyArray1::from_owned_array(py, params.b1))?;
        dict.set_item("W2", PyArray2::from_owned_array(py, params.w2))?;
        dict.set_item("b2", PyArray1::from_owned_array(py, params.b2))?;
        Ok(dict)
    }

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
