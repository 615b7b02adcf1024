"""The results model: the on-disk format (``model``, ``store``), the comparability key (``key``)
and its readers (``summary``, ``compare``, ``export``)."""
