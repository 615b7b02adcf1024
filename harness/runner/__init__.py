"""Planning and running a session: the work (``plan``), the matrix of runs (``matrix``), one
supervised worker process per run (``supervisor``, ``worker``), and what the machine is
(``envinfo``, ``gemm_rate``, ``threads``)."""
