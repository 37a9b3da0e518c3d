"""Not code: marks this directory as the package ``emulator.examples.scenarios`` so that the
example scenarios ship as package data (pyproject.toml ``package-dir``; emulator/examples)."""
