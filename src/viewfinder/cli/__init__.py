"""The ``viewfinder`` command line: thin commands over ``viewfinder.services``."""
