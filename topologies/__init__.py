"""Not code: marks this directory as the package ``emulator.examples.topologies`` so that the
example topologies ship as package data (pyproject.toml ``package-dir``; emulator/examples)."""
