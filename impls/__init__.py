"""Built-in backends; each module depends only on the Backend protocol and its own library."""
