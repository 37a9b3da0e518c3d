"""Topology files that are careless or hostile: every number finite and in range, names and
URIs checked, size and nesting capped; each refusal a sentence naming file, line, key and fix
(docs/topology.md, "Limits")."""

from __future__ import annotations

import os
import threading
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emulator.cli import main
from emulator.config import (
    MAX_DEPTH,
    MAX_FILE_BYTES,
    ConfigError,
    dns_name_problem,
    parse_toml,
    read_text,
)
from emulator.topology import TopologyError, load_topology, parse_topology
from tests.hostile import HOSTILE, WORDS

MINIMAL = """domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
"""
USER = '[[user]]\nuri = "{}"\npool = "fe1.contoso.test"\n'
LONG_LABEL = "a" * 64


def error(text: str) -> str:
    with pytest.raises(TopologyError) as info:
        parse_topology(text, "lab.toml")
    return str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # nan and inf, wherever they are (nan passes every comparison; inf never ends)
        (
            MINIMAL + "[resiliency]\nheartbeat_timeout = nan\n",
            "lab.toml:6: resiliency.heartbeat_timeout: expected a finite number, not nan",
        ),
        (
            MINIMAL + "[resiliency]\nfailover_detection_interval = inf\n",
            "lab.toml:6: resiliency.failover_detection_interval: expected a finite number, not inf",
        ),
        (
            MINIMAL + "backend = { principal = 'sql1', rto = -inf }\n",
            "lab.toml:5: pool[0].backend.rto: expected a finite number, not -inf",
        ),
        (
            MINIMAL + "[registrar]\nprimary_q = nan\n",
            "lab.toml:6: registrar.primary_q: expected a finite number, not nan",
        ),
        (
            MINIMAL + "description = [1.0, nan]\n",
            "lab.toml:5: pool[0].description: expected a finite number, not nan",
        ),
        (
            MINIMAL + "[resiliency]\nheartbeat_timeout = 1e99999\n",
            "lab.toml:6: resiliency.heartbeat_timeout: expected a finite number, not inf (nan "
            "and inf mean nothing here; numbers beyond 1.8e308 read as inf)",
        ),
        (
            MINIMAL + "[dns]\nttl = 1" + "0" * 400 + "\n",
            "lab.toml:6: dns.ttl: expected an integer of at most 9223372036854775807, not one "
            "of about 401 digits",
        ),
        (
            MINIMAL + "[dns]\nttl = 1" + "0" * 5000 + "\n",
            "lab.toml: not valid TOML: a value cannot be read (an integer of more than 4300 "
            "digits)",
        ),
        # numbers out of range
        (
            MINIMAL + "[resiliency]\nheartbeat_interval = 1e-300\n",
            "lab.toml:6: resiliency.heartbeat_interval: expected a number from 0.001 to 86400, "
            "not 1e-300",
        ),
        (
            MINIMAL + "[resiliency]\nfailback_detection_interval = 1e300\n",
            "lab.toml:6: resiliency.failback_detection_interval: expected a number from 0.001 "
            "to 86400",
        ),
        (
            MINIMAL + "backend = { principal = 'sql1', grace = 0 }\n",
            "lab.toml:5: pool[0].backend.grace: expected a number from 0.001 to 86400, not 0",
        ),
        (
            MINIMAL + "[registrar]\nmax_expires = 99999999999\n",
            "lab.toml:6: registrar.max_expires: expected an integer from 1 to 4294967295",
        ),
        (
            MINIMAL + "[registrar]\nretry_after = 9999999999999\n",
            "lab.toml:6: registrar.retry_after: expected an integer from 0 to 4294967295",
        ),
        (
            MINIMAL + "[registrar]\nfailback_error_id = 99999999999999999999999\n",
            "lab.toml:6: registrar.failback_error_id: expected an integer of at most "
            "9223372036854775807",
        ),
        (
            MINIMAL + "ports = { udp = -1 }\n",
            "lab.toml:5: pool[0].ports.udp: expected a port from 0 (ephemeral) to 65535",
        ),
        (
            MINIMAL + "[dns]\nport = 65536\n",
            "lab.toml:6: dns.port: expected an integer from 0 to 65535, not 65536",
        ),
        (
            MINIMAL + "[dns]\nttl = -5\n",
            "lab.toml:6: dns.ttl: expected an integer from 0 to 2147483647, not -5",
        ),
        (
            MINIMAL + '[[user]]\ntemplate = "u{n}"\ncount = 2000000\npool = "fe1.contoso.test"\n',
            "lab.toml:7: user[0].count: expected an integer from 1 to 1000000, not 2000000",
        ),
        # DNS names: labels of at most 63 octets, names of at most 253 characters, LDH
        (
            f'domain = "{LONG_LABEL}.test"\n' + MINIMAL.split("\n", 1)[1],
            "lab.toml:1: domain: expected a DNS domain name such as contoso.test",
        ),
        (
            MINIMAL.replace("fe1.contoso.test", f"{LONG_LABEL}.contoso.test"),
            "lab.toml:3: pool[0].fqdn: expected a fully qualified host name",
        ),
        (
            MINIMAL.replace("fe1.contoso.test", "fe_1.contoso.test"),
            "lab.toml:3: pool[0].fqdn: expected a fully qualified host name, not "
            "'fe_1.contoso.test' (the label 'fe_1'",
        ),
        (
            'domain = "-bad.test"\n' + MINIMAL.split("\n", 1)[1],
            "lab.toml:1: domain: expected a DNS domain name such as contoso.test, not "
            "'-bad.test' (the label '-bad'",
        ),
        (
            MINIMAL + '[dns]\nzones = ["contoso.test", "a..test"]\n',
            "lab.toml:6: dns.zones: expected DNS names, not 'a..test' (an empty label",
        ),
        (
            MINIMAL + f'[dns]\n[[dns.srv]]\nname = "_sip._tcp.{LONG_LABEL}.contoso.test"\n'
            'target = "fe1.contoso.test"\n',
            "lab.toml:7: dns.srv[0].name: expected a DNS name, not '_sip._tcp.aaaa",
        ),
        (
            MINIMAL + '[dns]\n[[dns.srv]]\nname = "_sipinternaltls._tcp.contoso.test"\n'
            'target = "fe 1.contoso.test"\nport = 5061\n',
            "lab.toml:8: dns.srv[0].target: expected a DNS name, not 'fe 1.contoso.test'",
        ),
        (
            MINIMAL + f'[dns]\n[[dns.a]]\nname = "{"x." * 130}contoso.test"\n'
            'address = "127.0.0.1"\n',
            "lab.toml:7: dns.a[0].name: expected a DNS name, not 'x.x.x",
        ),
        # user URIs
        (
            MINIMAL + USER.format("not a uri"),
            "lab.toml:6: user[0].uri: expected a SIP URI such as sip:alice@contoso.test, not "
            "'not a uri': a user part holds letters, digits",
        ),
        (
            MINIMAL + USER.format("sip:alice@fabrikam.test"),
            "lab.toml:6: user[0].uri: expected a user of the deployment's SIP domain "
            "(sip:...@contoso.test), not 'sip:alice@fabrikam.test'",
        ),
        (
            MINIMAL + USER.format("sip:alice@contoso..test"),
            "lab.toml:6: user[0].uri: expected a SIP URI such as sip:alice@contoso.test, not "
            "'sip:alice@contoso..test': its host has an empty label",
        ),
        (
            MINIMAL + USER.format("tel:+15551234"),
            "lab.toml:6: user[0].uri: expected a SIP URI such as sip:alice@contoso.test",
        ),
        (
            MINIMAL + '[[user]]\ntemplate = "user {n}"\ncount = 2\npool = "fe1.contoso.test"\n',
            "lab.toml:6: user[0].template: expected a SIP URI such as sip:alice@contoso.test, "
            "not 'user 1'",
        ),
        (
            MINIMAL + USER.format("sip:alice@contoso.test") + 'contacts = ["bob smith"]\n',
            "lab.toml:8: user[0].contacts: expected a SIP URI such as sip:alice@contoso.test, not "
            "'bob smith'",
        ),
        # nesting
        (
            MINIMAL + "description = " + "[" * 40 + "]" * 40 + "\n",
            f"lab.toml:5: pool[0].description: expected at most {MAX_DEPTH} levels of nested",
        ),
        (
            MINIMAL + "description = " + "[" * 5000 + "]" * 5000 + "\n",
            "lab.toml: arrays or inline tables nested too deeply to read (at most 32 levels); "
            "flatten them",
        ),
    ],
)
def test_bad_values_are_sentences_naming_line_key_and_fix(text: str, expected: str) -> None:
    assert error(text).startswith(expected), error(text)


def test_good_values_at_the_bounds_are_accepted() -> None:
    label = "a" * 63
    topology = parse_topology(
        f'domain = "{label}.test"\n'
        f'[[pool]]\nfqdn = "fe1.{label}.test"\naddress = "127.0.0.11"\n'
        "ports = { udp = 65535, tcp = 1, tls = 0 }\n"
        "[[user]]\nuri = \"sip:o'neil.smith+x%41@" + label + '.test"\n'
        f'pool = "fe1.{label}.test"\ncontacts = ["sip:bob@fabrikam.test"]\n'
        "[resiliency]\nheartbeat_interval = 0.001\nfailover_detection_interval = 86400\n"
        "[registrar]\nmax_expires = 4294967295\n"
    )
    assert topology.resiliency.heartbeat_interval == 0.001
    assert topology.registrar.max_expires == 2**32 - 1
    assert topology.users == {f"sip:o'neil.smith+x%41@{label}.test": f"fe1.{label}.test"}
    assert topology.contacts[f"sip:o'neil.smith+x%41@{label}.test"] == ("sip:bob@fabrikam.test",)


@pytest.mark.parametrize(
    ("name", "service", "problem"),
    [
        ("contoso.test", False, None),
        ("_sipinternaltls._tcp.contoso.test", True, None),
        ("_sipinternaltls._tcp.contoso.test", False, "the label '_sipinternaltls'"),
        ("a" * 63 + ".test", False, None),
        ("a" * 64 + ".test", False, "a label of 64 octets (at most 63"),
        (".".join(["a" * 60] * 4) + ".abcdefghij", False, "254 characters (at most 253"),
        ("a-.test", False, "the label 'a-'"),
        ("a b.test", False, "the label 'a b'"),
        ("bücher.test", False, "non-ASCII characters (write an internationalised name in its "),
        ("xn--bcher-kva.test", False, None),
        ("", False, "an empty name"),
        ("a..b", False, "an empty label"),
    ],
)
def test_dns_names_follow_rfc_1035_and_1123(name: str, service: bool, problem: str | None) -> None:
    found = dns_name_problem(name, service=service)
    if problem is None:
        assert found is None
    else:
        assert found is not None and found.startswith(problem), found


# -- reading the file --------------------------------------------------------------------------


def test_a_device_is_refused_not_read() -> None:
    with pytest.raises(TopologyError) as info:
        load_topology("/dev/zero")
    assert str(info.value) == (
        "/dev/zero: not a regular file (a device or socket); give the path of a topology file "
        "(TOML), or a pipe"
    )


def test_a_file_over_the_cap_is_refused(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    with big.open("wb") as f:
        f.write(MINIMAL.encode())
        f.write(b"#" * MAX_FILE_BYTES)
    with pytest.raises(TopologyError) as info:
        load_topology(big)
    assert str(info.value).startswith(f"{big}: larger than 16 MiB, the most a topology file")


def test_a_pipe_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "topology.fifo"
    os.mkfifo(fifo)

    def write() -> None:
        with fifo.open("w") as f:
            f.write(MINIMAL)

    writer = threading.Thread(target=write, daemon=True)  # never holds the run if we fail
    writer.start()
    try:
        topology = load_topology(fifo)
    finally:
        writer.join(timeout=10)
    assert topology.pools[0].fqdn == "fe1.contoso.test"


def test_not_utf8_and_missing_files_are_sentences(tmp_path: Path) -> None:
    latin = tmp_path / "latin.toml"
    latin.write_bytes(b'domain = "caf\xe9.test"\n')
    with pytest.raises(TopologyError, match=r"latin\.toml: not a text file: byte 13 is not UTF-8"):
        load_topology(latin)
    with pytest.raises(TopologyError, match=r"is a directory, not a topology file"):
        load_topology(tmp_path)
    with pytest.raises(ConfigError, match=r"no such thing file"):
        read_text(tmp_path / "absent.toml", "thing")


def test_parse_toml_allows_inf_only_where_asked() -> None:
    text = "[[client]]\noptions = { probe = inf, other = 1 }\n"
    with pytest.raises(ConfigError, match=r"x:2: client\[0\]\.options\.probe: expected a finite"):
        parse_toml(text, "x")
    data = parse_toml(text, "x", infinite=lambda path: path[-1] == "probe")
    assert data["client"][0]["options"]["probe"] == float("inf")
    with pytest.raises(ConfigError, match="not nan"):
        parse_toml("a = nan\n", "x", infinite=lambda path: True)


# -- through the command line: a sentence and an exit status, never a traceback -----------------


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        (MINIMAL + "[resiliency]\nheartbeat_timeout = nan\n", "expected a finite number"),
        (MINIMAL + USER.format("not a uri"), "user[0].uri: expected a SIP URI"),
        (MINIMAL + "x = " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
    ],
)
def test_topology_check_refuses_with_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, fragment: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    assert main(["topology", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sipemu: {bad}"), err
    assert fragment in err
    assert err.count("\n") == 1 and "Traceback" not in err


# -- any value in any key: a topology or a sentence ---------------------------------------------

DEFAULT_TEXT = resources.files("emulator").joinpath("data/default.toml").read_text("utf-8")


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_any_value_in_any_key_gives_a_topology_or_a_sentence(data: st.DataObject) -> None:
    lines = DEFAULT_TEXT.splitlines()
    keyed = [i for i, line in enumerate(lines) if "=" in line and not line.startswith("#")]
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.sampled_from(keyed))
        key = lines[i].split("=", 1)[0]
        lines[i] = f"{key}= {data.draw(HOSTILE | WORDS)}"
    try:
        parse_topology("\n".join(lines), "lab.toml")
    except TopologyError as exc:
        assert str(exc).startswith("lab.toml"), exc
        assert "\n" not in str(exc)
