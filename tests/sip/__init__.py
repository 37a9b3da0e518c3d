"""Tests of emulator.sip: codec, header values, URIs, stream framing, transactions."""
