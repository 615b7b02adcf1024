"""The job's work, below the runner: the plan every backend gets (initial parameters and batch
stream from one seed) and the arithmetic of ``verify`` (a backend stepped against the float64
reference, within stated tolerances). Nothing here starts a process or knows the CLI."""
