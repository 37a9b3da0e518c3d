"""``sipemu conform``: real SIP client programs judged against their client profiles.

Modules (docs/conform.md):

* :mod:`emulator.conform.trace`: packets -> a behaviour trace (requests, responses, DNS
  questions, keep-alives, with times), the same reduction for a real program's wire and the
  simulator's (sans-IO).
* :mod:`emulator.conform.aspects`: what is judged of a trace, and the comparison within
  tolerances (sans-IO).
* :mod:`emulator.conform.situations`: the catalogue of situations.
* :mod:`emulator.conform.drivers`: how to start and stop each real program.
* :mod:`emulator.conform.sim`: one situation in the simulator with the program's profile.
* :mod:`emulator.conform.live`: one situation with the real program in a network namespace.
* :mod:`emulator.conform.run`: the whole run, the table and the JSON.
"""
