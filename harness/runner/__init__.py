"""Planning and running a session.

``planning`` turns a run request into a ``matrix`` (the ``job``, the ``items``); an ``executor``
(this machine, or ``cluster``) does each run as a ``supervised`` fresh ``worker`` process and
``session`` writes what comes back; ``verification`` runs ``verify``. What the machine is:
``envinfo``, ``gemm_rate``, ``threads``, ``machine_state``.
"""
