"""``sipemu client signin``, ``client cache ...`` and ``clients run`` against a live deployment."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.testing import DeploymentFactory


def dns_arg(factory: DeploymentFactory) -> tuple[str, object]:
    running = factory()
    host, port = running.dns_address
    return f"{host}:{port}", running


@pytest.mark.live
def test_signin_until_registered_prints_json_lines_and_fills_the_cache(
    sipemu_factory: DeploymentFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dns, _ = dns_arg(sipemu_factory)
    status = main(
        [
            "client",
            "signin",
            "sip:clientuser2@contoso.test",
            "--dns",
            dns,
            "--cache-dir",
            str(tmp_path),
            "--until",
            "registered",
            "--json",
            "--timeout",
            "15",
        ]
    )
    assert status == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    states = [r for r in lines if r["kind"] == "state"]
    registered = [r for r in states if r["state"] == "registered"]
    assert registered and registered[0]["registrar"] == "fe2.contoso.test"
    assert registered[0]["backup"] == "fe1.contoso.test"
    assert states[-1]["state"] == "signed-out"  # signed out on the way out
    assert main(["client", "cache", "show", "--cache-dir", str(tmp_path)]) == 0
    assert "sip:clientuser2@contoso.test: fe2.contoso.test:" in capsys.readouterr().out
    assert (
        main(["client", "cache", "clear", "--cache-dir", str(tmp_path), "clientuser2@contoso.test"])
        == 0
    )
    capsys.readouterr()
    assert (
        main(["client", "cache", "show", "--cache-dir", str(tmp_path), "clientuser2@contoso.test"])
        == 1
    )


@pytest.mark.live
def test_clients_run_signs_in_everyone_from_a_file(
    sipemu_factory: DeploymentFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dns, _ = dns_arg(sipemu_factory)
    clients = tmp_path / "clients.toml"
    clients.write_text(
        f'dns = "{dns}"\n'
        '[[client]]\nname = "One"\nuser = "sip:clientuser1@contoso.test"\n'
        '[[client]]\nuser = "clientuser2@contoso.test"\nprofile = "lync2013"\n'
    )
    assert (
        main(
            ["clients", "run", str(clients), "--until", "registered", "--quiet", "--timeout", "15"]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "One: registered at fe1.contoso.test (full)" in out
    assert "clientuser2: registered at fe2.contoso.test (full)" in out


@pytest.mark.live
def test_until_times_out_with_status_1_and_names_the_laggards(
    sipemu_factory: DeploymentFactory, capsys: pytest.CaptureFixture[str]
) -> None:
    dns, running = dns_arg(sipemu_factory)
    running.dns.set_fault("timeout")  # type: ignore[attr-defined]
    status = main(
        [
            "client",
            "signin",
            "sip:clientuser1@contoso.test",
            "--dns",
            dns,
            "--until",
            "registered",
            "--timeout",
            "1",
            "--quiet",
        ]
    )
    assert status == 1
    assert "sipemu: not registered after 1 s: clientuser1" in capsys.readouterr().err


def test_bad_clients_file_and_arguments_are_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "clients.toml"
    bad.write_text('[[client]]\nuser = "sip:a@contoso.test"\nprofil = "x"\n')
    assert main(["clients", "run", str(bad), "--dns", "127.0.0.1:53"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(
        f"sipemu: {bad}:3: client[0].profil: unknown key (did you mean 'profile'?"
    )
    bad.write_text('[[client]]\nuser = "sip:a@contoso.test"\n')
    assert main(["clients", "run", str(bad)]) == 2
    assert "no DNS server" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["client", "signin", "sip:a@contoso.test", "--dns", "nowhere"])
    assert exit_info.value.code == 2
    assert "expected HOST:PORT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("content", "said"),
    [
        ('[[client]]\nuser = "sip:a@contoso.test"\ncount = nan\n', "expected a finite number"),
        ("a = " + "[" * 5000 + "\n", "nested too deeply"),
        ("a = 1" + "0" * 5000 + "\n", "sipemu: "),
    ],
    ids=["nan", "deep", "huge-integer"],
)
def test_a_hostile_clients_file_is_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, said: str
) -> None:
    # Issue 21: the clients file goes through the same checks as every user file.
    bad = tmp_path / "clients.toml"
    bad.write_text(content)
    assert main(["clients", "run", str(bad), "--dns", "127.0.0.1:53"]) == 2
    err = capsys.readouterr().err
    assert said in err and "Traceback" not in err and len(err.splitlines()) == 1


def test_a_device_is_not_read_as_a_clients_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["clients", "run", "/dev/zero", "--dns", "127.0.0.1:53"]) == 2
    assert "not a regular file" in capsys.readouterr().err
