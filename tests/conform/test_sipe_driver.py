"""The SIPE driver's pieces that need no SIPE: its libpurple configuration, the situations it
runs over another transport, the ones it is not judged in, the Lync SRV names."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from emulator.conform import purple
from emulator.conform.drivers import get_driver
from emulator.conform.purple import PurpleAccount, _account_xml
from emulator.conform.run import run
from emulator.conform.situations import select


def test_the_account_is_a_sipe_account_enabled_for_finch() -> None:
    root = ET.fromstring(_account_xml(PurpleAccount("clientuser2@contoso.test", "pw")))
    account = root.find("account")
    assert account is not None
    assert account.findtext("protocol") == "prpl-sipe"
    assert account.findtext("name") == "clientuser2@contoso.test"
    settings = {s.get("name"): s.text for s in account.iterfind("settings/setting")}
    assert settings["transport"] == "auto" and not settings["server"]  # discovery
    # finch's UI id is gnt-purple: an account enabled for another UI is not signed in.
    ui = account.find("settings[@ui='gnt-purple']/setting[@name='auto-login']")
    assert ui is not None and ui.text == "1"


def test_a_missing_piece_is_named_with_its_debian_package(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(purple, "SIPE_PLUGIN", tmp_path / "libsipe.so")
    monkeypatch.setattr(purple.shutil, "which", lambda name: None if name == "finch" else name)
    problem = purple.purple_problem()
    assert problem is not None
    assert "pidgin-sipe finch" in problem and "apt-get install -y" in problem


def test_registrar_situations_move_to_tcp_and_transport_ones_are_skipped() -> None:
    sipe = get_driver("sipe")
    refused = select(["refused"])[0]
    moved = refused.for_transports(sipe.transports)
    assert moved is not None and moved.transports == ("tcp",)
    assert select(["silent-udp"])[0].for_transports(sipe.transports) is None
    discovery = select(["discovery"])[0]
    assert discovery.for_transports(sipe.transports) is discovery
    assert discovery.transport(sipe.transports) == "tcp"
    # baresip and linphonec run the catalogue as before.
    assert refused.for_transports(get_driver("linphonec").transports) is refused


def test_the_lync_srv_names_are_published_beside_the_rfc_3263_ones() -> None:
    names = {r["name"] for r in select(["silent-tls"])[0].topology()["dns"]["srv"]}
    assert names == {"_sips._tcp.contoso.test", "_sipinternaltls._tcp.contoso.test"}
    names = {r["name"] for r in select(["refused"])[0].topology()["dns"]["srv"]}
    assert names == {"_sip._udp.contoso.test"}


def test_situations_a_driver_is_not_judged_in_are_skipped_with_the_reason() -> None:
    sipe = get_driver("sipe")
    lines: list[str] = []
    report = run(sipe, select(["failback-notify", "failback-redirect"]), progress=lines.append)
    assert report.judgements == []
    assert set(report.skipped) == {"failback-notify", "failback-redirect"}
    assert all("first SRV target" in why for why in report.skipped.values())
    assert lines[0].startswith("failback-notify: skipped (SIPE tries only")
