#!/usr/bin/env python3
"""Cost of authentication at a pool core (issue 16): a refresh REGISTER, in process, with
``[auth]`` off (the reference, measured in the same run), Digest SHA-256 (each refresh with
the next nonce-count) and NTLM (each refresh signed through the security association, the
200 signed back).

The pool core is driven directly (``Pool.receive`` and draining its actions and events), as in
tests/registrar/harness.py; admission control is off so that the rate is not shed.  The
figures are microseconds per REGISTER, best of ``--rounds``::

    .venv/bin/python benchmarks/auth_bench.py
    .venv/bin/python benchmarks/auth_bench.py --requests 5000 --rounds 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from emulator.net import Flow
from emulator.sip.message import Response
from tests.registrar.harness import R1, World, make_world, register
from tests.registrar.ntlm_client import NtlmClient
from tests.registrar.test_auth import digest_register

FE1 = "fe1.contoso.test"


def world(scheme: str) -> World:
    text = R1.replace("{registrar}", "source_rate = 0\noverload_rate = 0")
    if scheme != "none":
        text += f'\n[auth]\nscheme = "{scheme}"\n'
    return make_world(topology_text=text)


def first(w: World, data: bytes) -> Response:
    (answer,) = w.send(FE1, data)
    assert isinstance(answer, Response)
    return answer


def requests(scheme: str, w: World, count: int) -> list[bytes]:
    if scheme == "none":
        return [register("clientuser1", cseq=i + 2) for i in range(count)]
    if scheme == "digest":
        challenge = first(w, register("clientuser1"))
        return [digest_register(challenge, nc=i + 1, cseq=i + 2) for i in range(count)]
    client = NtlmClient()
    first(w, register("clientuser1", cseq=1))
    start = client.authorization(', gssapi-data=""')
    challenge = first(w, register("clientuser1", cseq=2, extra=f"Authorization: {start}"))
    auth = client.answer(challenge)
    assert first(w, register("clientuser1", cseq=3, extra=f"Authorization: {auth}")).status == 200
    return [client.signed(register("clientuser1", cseq=i + 4)) for i in range(count)]


def measure(scheme: str, count: int) -> float:
    w = world(scheme)
    batch = requests(scheme, w, count)
    pool = w.pools[FE1]
    me = pool.endpoints[FE1]
    flow = Flow("udp", (me.address, me.ports["udp"]), ("127.0.0.100", 5070))
    start = time.perf_counter()
    for data in batch:
        pool.receive(data, flow, w.now)
        pool.actions()
        pool.events()
    elapsed = time.perf_counter() - start
    return elapsed / count * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    for scheme in ("none", "digest", "ntlm"):
        best = min(measure(scheme, args.requests) for _ in range(args.rounds))
        label = "auth off (reference)" if scheme == "none" else scheme
        print(f"{label:>22}: {best:7.1f} µs per refresh REGISTER")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
