"""The report from stored records: tables (``tables``), charts (``charts``), and the files that
hold them (``markdown``, ``html``, ``write``)."""
