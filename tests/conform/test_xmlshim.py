"""The XML shim for Debian 12's pidgin-sipe (emulator/conform/xmlshim.py): a handler shaped
like SIPE's (SAX1 callbacks, flagged SAX2) sees no element through libxml2 alone, and every
element with the shim preloaded; a proper SAX2 handler is left alone."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from emulator.conform import xmlshim

PROBE = r"""
#include <stdio.h>
#include <string.h>
#include <libxml/parser.h>
static int sax1, sax2;
static void start1(void *c, const xmlChar *n, const xmlChar **a) { sax1++; }
static void start2(void *c, const xmlChar *l, const xmlChar *p, const xmlChar *u, int nn,
                   const xmlChar **ns, int na, int nd, const xmlChar **a) { sax2++; }
int main(int argc, char **argv) {
    xmlSAXHandler h;
    memset(&h, 0, sizeof h);
    h.initialized = XML_SAX2_MAGIC;
    if (argc > 1) h.startElementNs = start2; else h.startElement = start1;
    const char *doc = "<roster><item/><item/></roster>";
    xmlSAXUserParseMemory(&h, NULL, doc, (int)strlen(doc));
    printf("%d %d\n", sax1, sax2);
    return 0;
}
"""


@pytest.fixture(scope="module")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    reason = xmlshim.problem()
    if reason is not None:
        if os.environ.get("SIPEMU_REQUIRE_PEERS") == "1":
            pytest.fail(f"{reason} (SIPEMU_REQUIRE_PEERS=1 requires it)")
        pytest.skip(reason)
    work = tmp_path_factory.mktemp("probe")
    (work / "probe.c").write_text(PROBE)
    subprocess.run(
        [
            "gcc",
            "-I/usr/include/libxml2",
            "-o",
            str(work / "probe"),
            str(work / "probe.c"),
            "-lxml2",
        ],
        check=True,
    )
    return work / "probe"


def _run(probe: Path, *args: str, preload: Path | None = None) -> str:
    env = {"LD_PRELOAD": str(preload)} if preload is not None else {}
    return subprocess.run(
        [str(probe), *args], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_sipe_shaped_handler_sees_elements_only_with_the_shim(probe: Path, tmp_path: Path) -> None:
    library = xmlshim.build(tmp_path)
    assert _run(probe) == "0 0"  # the Debian 12 bug: nothing reaches a SAX1 callback
    assert _run(probe, preload=library) == "3 0"
    assert xmlshim.build(tmp_path) == library  # built once per source


def test_a_sax2_handler_goes_through_unchanged(probe: Path, tmp_path: Path) -> None:
    library = xmlshim.build(tmp_path)
    assert _run(probe, "sax2") == "0 3"
    assert _run(probe, "sax2", preload=library) == "0 3"


def test_a_missing_compiler_is_one_sentence(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(xmlshim.shutil, "which", lambda name: None)
    with pytest.raises(xmlshim.ShimError, match=r"^no C compiler .*apt-get install -y gcc$"):
        xmlshim.build()
