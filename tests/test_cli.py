"""The ``sipemu`` command: topology show/check, and ``sipemu up`` as a real process."""

from __future__ import annotations

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import dns.message
import dns.query
import pytest

from emulator.cli import main
from emulator.testing import DeploymentFactory
from emulator.testing.sip_client import register_request
from emulator.topology import parse_topology

EPHEMERAL = """
domain = "contoso.test"
[[pool]]
fqdn = "fe1.contoso.test"
address = "127.0.0.11"
ports = { udp = 0, tcp = 0, tls = 0 }
[[user]]
uri = "sip:clientuser1@contoso.test"
pool = "fe1.contoso.test"
[dns]
port = 0
[[dns.srv]]
name = "_sipinternaltls._tcp.contoso.test"
target = "fe1.contoso.test"
"""
WAIT = 20.0


def test_topology_show_prints_the_embedded_default(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["topology", "show"]) == 0
    text = capsys.readouterr().out
    assert parse_topology(text).domain == "contoso.test"
    assert 'target = "fe1.contoso.test"' in text


def test_topology_check_and_summary(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.toml"
    good.write_text(EPHEMERAL)
    assert main(["topology", "check", str(good)]) == 0
    assert "ok (1 pools, 1 users, domain contoso.test)" in capsys.readouterr().out
    assert main(["topology", "show", str(good)]) == 0
    assert "fe1.contoso.test" in capsys.readouterr().out
    bad = tmp_path / "bad.toml"
    bad.write_text(EPHEMERAL.replace('address = "127.0.0.11"', 'address = "nowhere"'))
    assert main(["topology", "check", str(bad)]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sipemu: {bad}:5: pool[0].address: expected an IP address")
    assert "Traceback" not in err


def test_up_with_a_bad_or_missing_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["up", str(tmp_path / "missing.toml")]) == 2
    missing = tmp_path / "missing.toml"
    assert capsys.readouterr().err == f"sipemu: {missing}: no such topology file\n"
    remote = tmp_path / "remote.toml"
    remote.write_text(EPHEMERAL.replace("127.0.0.11", "192.0.2.7"))
    assert main(["up", str(remote)]) == 2
    err = capsys.readouterr().err
    assert "192.0.2.7 is not a loopback address" in err and "--allow-non-loopback" in err


class Process:
    """``sipemu up`` in a subprocess; its stdout lines arrive in a queue (every wait bounded)."""

    def __init__(self, args: list[str], *, prefix: list[str] | None = None) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        command = [*(prefix or []), sys.executable, "-m", "emulator.cli", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
        )
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def wait_for(self, text: str, timeout: float = WAIT) -> str:
        while True:
            try:
                line = self.lines.get(timeout=timeout)
            except queue.Empty:
                raise AssertionError(f"no line with {text!r} in {timeout} s: {self.seen}") from None
            self.seen.append(line)
            if text in line:
                return line

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        return self.proc.wait(WAIT)


@pytest.fixture
def process() -> Iterator[list[Process]]:
    started: list[Process] = []
    yield started
    for p in started:
        if p.proc.poll() is None:
            p.proc.kill()
            p.proc.wait(WAIT)


@pytest.mark.live
def test_up_serves_prints_endpoints_and_stops_on_ctrl_c(
    tmp_path: Path, process: list[Process]
) -> None:
    topology = tmp_path / "lab.toml"
    topology.write_text(EPHEMERAL)
    up = Process(["up", str(topology)])
    process.append(up)
    up.wait_for("NAME")
    fe1_udp = up.wait_for("fe1.contoso.test  frontend  UDP").split()[-1].rsplit(":", 1)
    dns_row = up.wait_for("dns               dns       UDP")
    address = dns_row.split()[-1]
    host, port = address.rsplit(":", 1)
    ca = Path(up.wait_for("CA certificate: ").split(": ", 1)[1])
    assert ca.is_file() and ca.parent.name.startswith(f"sipemu-ca-{up.proc.pid}-")
    up.wait_for("sipemu: up")
    query = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
    answer = dns.query.udp(query, host, port=int(port), timeout=5)
    assert answer.answer and "fe1.contoso.test." in answer.answer[0].to_text()
    up.wait_for("SRV _sipinternaltls._tcp.contoso.test -> NOERROR")  # one line per query
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(WAIT)
        register = register_request("clientuser1", "contoso.test", client.getsockname())
        client.sendto(register, (fe1_udp[0], int(fe1_udp[1])))
        assert client.recv(65536).startswith(b"SIP/2.0 200 OK")
    up.wait_for("REGISTER sip:clientuser1@contoso.test -> 200 OK")
    assert up.stop() == 0
    # The summary on the way out: what the deployment answered and counted.
    head = up.wait_for("sipemu: summary after ")
    assert head.endswith("(SIGINT): 1 DNS query")
    pool = up.wait_for("  fe1.contoso.test: ")
    assert pool.startswith(
        "  fe1.contoso.test: 1 request answered (REGISTER 200: 1); 1 registration, "
        "0 refreshes, peak 1 binding; 0 failovers, 0 failbacks; 0 heartbeats answered"
    )
    up.wait_for("sipemu: stopped")
    assert not ca.parent.exists()  # its temporary CA directory went with it


@pytest.mark.live
def test_up_default_topology_in_a_private_network_namespace(process: list[Process]) -> None:
    """The README's command, on the fixed ports 5060/5061/5353, where nothing else can hold
    them: a private network namespace (``unshare -n``, then ``ip link set lo up``)."""
    unshare, ip = shutil.which("unshare"), shutil.which("ip")
    if unshare is None or ip is None:
        pytest.skip("needs unshare (util-linux) and ip (iproute2)")
    probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, check=False)
    if probe.returncode != 0:
        pytest.skip(f"cannot make a network namespace here: {probe.stderr.decode().strip()}")
    script = f'{ip} link set lo up && exec "$0" "$@"'
    up = Process(["up"], prefix=[unshare, "-rn", "sh", "-c", script])
    process.append(up)
    for row in (
        "fe1.contoso.test  frontend  UDP        127.0.0.11:5060",
        "fe1.contoso.test  frontend  TLS        127.0.0.11:5061",
        "fe2.contoso.test  frontend  TCP        127.0.0.12:5060",
        "dns               dns       UDP        127.0.0.10:5353",
    ):
        up.wait_for(row)
    up.wait_for("sipemu: up")
    assert up.stop() == 0


@pytest.mark.live
def test_up_messages_logs_every_message_in_full(tmp_path: Path, process: list[Process]) -> None:
    topology = tmp_path / "lab.toml"
    topology.write_text(EPHEMERAL)
    up = Process(["up", str(topology), "--messages", "--control", "off"])
    process.append(up)
    fe1_udp = up.wait_for("fe1.contoso.test  frontend  UDP").split()[-1].rsplit(":", 1)
    up.wait_for("sipemu: up")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.bind(("127.0.0.1", 0))
        client.settimeout(WAIT)
        register = register_request("clientuser1", "contoso.test", client.getsockname())
        client.sendto(register, (fe1_udp[0], int(fe1_udp[1])))
        assert client.recv(65536).startswith(b"SIP/2.0 200 OK")
    # The request as received, then the answer as sent, each whole and indented.
    up.wait_for("UDP 127.0.0.1:")
    up.wait_for("    | REGISTER sip:contoso.test SIP/2.0")
    up.wait_for("    | SIP/2.0 200 OK")
    assert up.stop() == 0


# -- examples found by name (issue 19) -------------------------------------------------------

ROOT = Path(__file__).resolve().parents[1]


def test_every_example_in_the_checkout_ships_and_is_found_by_name() -> None:
    from emulator.examples import example_names, resolve

    for kind, directory in (("topology", "topologies"), ("scenario", "scenarios")):
        in_checkout = sorted(p.stem for p in (ROOT / directory).glob("*.toml"))
        assert example_names(kind) == in_checkout  # type: ignore[arg-type]
        for name in in_checkout:
            assert (
                resolve(kind, name).read_bytes() == (ROOT / directory / f"{name}.toml").read_bytes()
            )  # type: ignore[arg-type]
    assert "r1-lab" in example_names("clients")


def test_names_work_from_any_directory_and_an_unknown_one_lists_the_examples(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # outside the checkout: no topologies/ here
    assert main(["topology", "check", "fast"]) == 0
    assert "fast: ok (2 pools, 2 users, domain contoso.test)" in capsys.readouterr().out
    assert main(["topology", "show", "fast.toml"]) == 0
    shown = capsys.readouterr().out
    assert "description: R1 lab, short timers, ephemeral ports\n" in shown
    # The SRV records the fake DNS serves (port 0 here: the port bound at `sipemu up`).
    assert "dns records: 3 (1 SRV)\n  _sipinternaltls._tcp.contoso.test 300 SRV 0 0 0 fe1" in shown
    assert main(["topology", "show", "r4-dr-site-lync2010"]) == 0
    shown = capsys.readouterr().out
    assert "SRV 0 0 5061 fe1.contoso.test\n" in shown and "SRV 10 0 5061 dr1.contoso.test" in shown
    # A scenario by name; its topology path (../topologies/r1-lab.toml) holds where it ships.
    assert main(["run", "r1-test3-two-srv-clientuser1-reaches-backup", "--quiet"]) == 0
    assert " 0 failed" in capsys.readouterr().out
    assert main(["topology", "check", "fats"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("sipemu: fats: no such topology file, nor a shipped example")
    assert "did you mean 'fast'?" in err and "r4-dr-site-lync2010" in err
    assert main(["run", "no-such-scenario"]) == 2
    assert "r1-test1-one-srv-clientuser1-stranded" in capsys.readouterr().err
    # A path still works, and a missing path is a missing file, not an unknown name.
    own = tmp_path / "fast"
    own.write_text(EPHEMERAL)
    assert main(["topology", "check", "fast"]) == 0
    assert "fast: ok (1 pools" in capsys.readouterr().out
    assert main(["topology", "check", "nowhere/fast.toml"]) == 2
    assert capsys.readouterr().err == "sipemu: nowhere/fast.toml: no such topology file\n"


@pytest.mark.live
def test_the_example_clients_file_signs_in_everyone_of_the_default_deployment(
    sipemu_factory: DeploymentFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """docs/clients.md's example against `sipemu up` (here on ephemeral ports, hence --dns)."""
    monkeypatch.chdir(tmp_path)
    host, port = sipemu_factory().dns_address
    command = ["clients", "run", "r1-lab", "--dns", f"{host}:{port}", "--until", "registered"]
    assert main([*command, "--quiet", "--timeout", "20"]) == 0
    out = capsys.readouterr().out
    assert "ClientUser1: registered at fe1.contoso.test (full)" in out
    assert "ClientUser2: registered at fe2.contoso.test (full)" in out


@pytest.mark.live
def test_the_plugin_outside_the_checkout_starts_an_example_by_name_without_warnings(
    tmp_path: Path,
) -> None:
    """A project of a user's: sipemu_factory("fast") works, and pytest-asyncio does not warn
    about its unset loop scope (the plugin sets it)."""
    (tmp_path / "test_user.py").write_text(
        "def test_fast(sipemu_factory):\n"
        '    running = sipemu_factory("fast")\n'
        '    assert running.topology.source.endswith("fast.toml")\n'
        '    assert running.pool_address("fe1.contoso.test")[1] != 0\n'
    )
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "default"]
    done = subprocess.run(
        [*command, "test_user.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    assert "1 passed" in output
    assert "asyncio_default_fixture_loop_scope" not in output
    assert "warning" not in output.lower()


# -- the reader of stdout leaves (issue 19) --------------------------------------------------


def _reader_gone_from_the_start(args: list[str]) -> tuple[int, str]:
    """Run ``sipemu ARGS`` with its stdout's reader gone before the first line (``| head -0``;
    the agents' first event is the first line, written from their callbacks): the exit status
    and stderr."""
    read, write = os.pipe()
    os.close(read)
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator.cli", *args],
            stdout=write,
            stderr=subprocess.PIPE,
            text=True,
        )
    finally:
        os.close(write)
    try:
        _, err = proc.communicate(timeout=WAIT)
        return proc.returncode, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)


@pytest.mark.live
@pytest.mark.parametrize("command", ["signin", "clients"])
def test_client_commands_whose_reader_leaves_exit_141_without_a_traceback(
    sipemu_factory: DeploymentFactory, command: str
) -> None:
    host, port = sipemu_factory().dns_address
    dns = ["--dns", f"{host}:{port}"]
    if command == "signin":  # without --until it would run until Ctrl-C
        args = ["client", "signin", "sip:clientuser2@contoso.test", *dns, "--json"]
    else:
        args = ["clients", "run", "r1-lab", *dns, "--until", "registered"]
    status, err = _reader_gone_from_the_start(args)
    assert (status, err) == (141, "")


@pytest.mark.live
def test_up_whose_reader_leaves_stops_cleanly_with_141(tmp_path: Path) -> None:
    """`sipemu up | head`: the next line after the reader left (here, a DNS query's) stops the
    deployment cleanly."""
    topology = tmp_path / "lab.toml"
    topology.write_text(EPHEMERAL)
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    env = dict(os.environ, PYTHONUNBUFFERED="1", TMPDIR=str(temporary))
    proc = subprocess.Popen(
        [sys.executable, "-m", "emulator.cli", "up", str(topology), "--control", "off"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert proc.stdout is not None and proc.stderr is not None
        dns_address = None
        for line in proc.stdout:  # bounded: the endpoints, then "sipemu: up"
            if line.startswith("dns ") and " UDP " in line:
                dns_address = line.split()[-1].rsplit(":", 1)
            if line.startswith("sipemu: up"):
                break
        assert dns_address is not None
        proc.stdout.close()  # the reader leaves; nothing is written until the next exchange
        query = dns.message.make_query("_sipinternaltls._tcp.contoso.test", "SRV")
        dns.query.udp(query, dns_address[0], port=int(dns_address[1]), timeout=WAIT)
        assert proc.wait(WAIT) == 141
        assert proc.stderr.read() == ""  # no traceback
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(WAIT)
    assert list(temporary.iterdir()) == []  # stopped cleanly: no CA directory left


# -- exit statuses (issue 19; README.md, "Exit statuses") ------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["topology", "check", "missing.toml"],
        ["topology", "show", "missing.toml"],
        ["up", "missing.toml"],
        ["run", "missing.toml"],
        ["check", "missing.toml"],
        ["clients", "run", "missing.toml"],
        ["client", "cache", "seed", "--cache-dir", ".", "u@contoso.test", "fe1", "--port", "0"],
    ],
)
def test_bad_input_is_status_2_for_every_command(
    args: list[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.startswith("sipemu: ") and err.count("\n") == 1, err


def test_usage_errors_are_status_2_and_failed_verdicts_status_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as usage:
        main(["topology", "check"])
    assert usage.value.code == 2
    failing = tmp_path / "failing.toml"
    failing.write_text(
        'duration = 20\n[[client]]\nname = "A"\nuser = "sip:clientuser1@contoso.test"\n'
        '[[expect]]\nclient = "A"\nat = 10\nstate = "registered"\n'
    )
    assert main(["run", str(failing), "--quiet"]) == 1  # never signed in: the verdict fails
    assert "0 passed, 1 failed" in capsys.readouterr().out


# -- the README's tour shows what the commands print (issue 19) ------------------------------


def _readme_block(command: str) -> list[str]:
    """The lines a README console block shows after ``command`` (up to the next ``$`` or the end
    of the block)."""
    readme = ROOT / "README.md"
    if not readme.is_file():  # .ci/run's copy of the tests for the compiled build has none
        pytest.skip("README.md is not beside these tests")
    lines = readme.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"$ {command}"))
    shown = []
    for line in lines[start + 1 :]:
        if line.startswith(("$ ", "```")):
            break
        shown.append(line)
    while shown and shown[0].startswith("      --"):  # the command's continuation lines
        shown.pop(0)
    return shown


def test_the_readme_ladder_is_what_the_command_prints(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("COLUMNS", "100")  # the README's width
    args = ["run", "scenarios/r1-test2-clientuser2-fails-over-and-back.toml", "--quiet"]
    args += ["--ladder", "--ladder-filter", "client=ClientUser2", "--ladder-filter", "until=1"]
    args += ["--ladder-filter", "method!=DNS", "--ladder-style", "unicode"]
    assert main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    shown = _readme_block(".venv/bin/sipemu run scenarios/r1-test2-clientuser2-fails-over-and")
    assert printed == shown


def test_the_readme_unknown_name_line_is_what_the_command_prints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["topology", "show", "fats"]) == 2
    assert capsys.readouterr().err.splitlines() == _readme_block(
        ".venv/bin/sipemu topology show fats"
    )
