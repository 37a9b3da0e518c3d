"""The example clients files (``sipemu clients run default``; emulator/examples)."""
