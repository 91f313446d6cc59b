"""Use-cases: one function per user action, shared by the CLI, the Python API and the server."""
