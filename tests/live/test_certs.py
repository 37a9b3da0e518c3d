"""The CA file and the temporary CA directory (issue 21 item 11 and "crash safety"): no write
through a symbolic link, and no directory left behind on any exit path that runs Python."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from emulator.cli import main
from emulator.live.certs import (
    CA_DIR_PREFIX,
    CA_FILE_NAME,
    CaFileError,
    TlsMaterial,
    remove_stale_ca_dirs,
)

ROOT = Path(__file__).resolve().parents[2]


def test_a_symlink_named_like_the_ca_file_is_refused_and_its_target_kept(
    tmp_path: Path,
) -> None:
    victim = tmp_path / "precious.txt"
    victim.write_text("keep me")
    (tmp_path / CA_FILE_NAME).symlink_to(victim)
    with pytest.raises(CaFileError) as info:
        TlsMaterial(tmp_path)
    text = str(info.value)
    assert "symbolic link" in text and str(victim) in text and "--ca-dir" in text
    assert victim.read_text() == "keep me"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["precious.txt", CA_FILE_NAME]


def test_a_dangling_symlink_is_refused_and_nothing_created(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "made.pem"
    (tmp_path / CA_FILE_NAME).symlink_to(target)
    with pytest.raises(CaFileError):
        TlsMaterial(tmp_path)
    assert not target.parent.exists()


def test_an_existing_ca_file_is_replaced_whole(tmp_path: Path) -> None:
    (tmp_path / CA_FILE_NAME).write_text("old")
    material = TlsMaterial(tmp_path)
    pem = material.ca_path.read_bytes()
    assert pem == material.ca_pem and pem.startswith(b"-----BEGIN CERTIFICATE-----")
    assert material.ca_path.stat().st_mode & 0o777 == 0o644  # clients of other users read it
    assert [p.name for p in tmp_path.iterdir()] == [CA_FILE_NAME]  # no temporary file left
    material.cleanup()
    assert material.ca_path.exists()  # a directory given by the user is the user's


def test_sipemu_up_says_so_in_a_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / CA_FILE_NAME).symlink_to(tmp_path / "target")
    status = main(["up", "--ca-dir", str(tmp_path), "--quiet"])
    err = capsys.readouterr().err
    assert status == 2
    assert err.startswith("sipemu: ") and "symbolic link" in err and "Traceback" not in err
    assert not (tmp_path / "target").exists()


def test_cleanup_removes_the_temporary_directory_once() -> None:
    material = TlsMaterial()
    directory = material.directory
    assert directory.name.startswith(f"{CA_DIR_PREFIX}{os.getpid()}-")
    assert material.ca_path.exists()
    material.cleanup()
    material.cleanup()
    assert not directory.exists()


# -- exit paths, in child processes (their temporary directory is tmp_path) -------------------

CHILD = """
import os, signal, sys
from emulator.live.certs import TlsMaterial, exit_on_sigterm
how = sys.argv[1]
if how == "sigterm-handled":
    exit_on_sigterm()
material = TlsMaterial()
print(material.directory, material.ca_path.is_file(), flush=True)
if how == "exit":
    sys.exit(0)
if how == "exception":
    raise RuntimeError("boom")
signal.pause()  # until a signal ends the process
"""


def child(tmp_path: Path, how: str) -> tuple[subprocess.Popen[str], Path]:
    env = dict(os.environ, TMPDIR=str(tmp_path))
    process = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), how],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    name, made = process.stdout.readline().split()
    directory = Path(name)
    assert directory.parent == tmp_path and made == "True"
    return process, directory


@pytest.mark.parametrize("how", ["exit", "exception"])
def test_the_directory_is_removed_at_exit_and_after_an_uncaught_exception(
    tmp_path: Path, how: str
) -> None:
    process, directory = child(tmp_path, how)
    process.communicate(timeout=60)
    assert not directory.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_the_directory_is_removed_on_sigint_and_on_a_handled_sigterm(
    tmp_path: Path, signum: signal.Signals
) -> None:
    process, directory = child(tmp_path, "sigterm-handled")
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert not directory.exists()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_a_directory_left_by_a_killed_run_is_removed_by_the_next(
    tmp_path: Path, signum: signal.Signals
) -> None:
    """SIGKILL (and SIGTERM with no handler) run no Python: the directory stays until the next
    run, which removes it because its owner is gone."""
    process, directory = child(tmp_path, "wait")
    process.send_signal(signum)
    process.communicate(timeout=60)
    assert directory.exists()
    alive = tmp_path / f"{CA_DIR_PREFIX}{os.getpid()}-live"  # a running owner: kept
    alive.mkdir()
    assert remove_stale_ca_dirs(tmp_path) == [directory]
    assert not directory.exists() and alive.exists()
