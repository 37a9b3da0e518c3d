"""Groups, their expectations and relative times in a ``--realtime`` run: the same judging
as in virtual time, over the live clients' state changes."""

from __future__ import annotations

import pytest

from emulator.scenario.model import parse_scenario
from emulator.scenario.realtime import run_realtime

pytestmark = pytest.mark.live

GROUP = """seed = 2
duration = 60
[topology]
domain = "contoso.test"
pool = [
  { fqdn = "fe1.contoso.test", address = "127.0.0.11", ports = { udp = 0, tcp = 0, tls = 0 } },
]
user = [{ template = "user{n}", count = 6, pool = "fe1.contoso.test" }]
dns = { port = 0, srv = [
  { name = "_sipinternaltls._tcp.contoso.test", target = "fe1.contoso.test" },
] }

[[clients]]
count = 6
name = "c{n}"
user = "user{n}@contoso.test"
sign_in = [0, 5]

[[step]]
id = "stop"
at = 15
action = "stop-pool"
target = "fe1.contoso.test"

[[expect]]
group = "c"
state = "registered"
at_least = 1.0
by = 10

[[expect]]
group = "c"
spread = { "fe1.contoso.test" = 100 }
tolerance = 0
at = 10

[[expect]]
group = "c"
state = "registered"
count = 1
first_between = [30, 40]
after = "step:stop"
note = "wrong on purpose: they are registered when the pool stops"

[[expect]]
group = "c"
state = "registered"
at_most = 0.0
within = 40
after = "step:stop"
"""


def test_group_expectations_are_judged_in_a_realtime_run() -> None:
    result = run_realtime(parse_scenario(GROUP, "<group>"), time_scale=10)
    registered, spread, wrong, stopped = result.results
    assert registered.passed and "6 of 6" in registered.detail, registered.detail
    assert spread.passed, spread.detail
    assert not wrong.passed and "first held at 15.000 (early)" in wrong.detail, wrong.detail
    assert stopped.passed and "0 of 6" in stopped.detail, stopped.detail
