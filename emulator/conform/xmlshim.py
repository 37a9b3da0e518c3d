"""A preload library that lets Debian 12's pidgin-sipe parse XML.

pidgin-sipe 1.25.0 (Debian 12, ``1.25.0-2.1+b1``) parses every XML body (provisioning,
roaming-self, the contact list, presence) with ``xmlSAXUserParseMemory`` and a handler that
sets only the SAX1 element callbacks (``startElement``, ``endElement``) but is flagged
``XML_SAX2_MAGIC``.  libxml2 2.9.14 (Debian 12) then calls the SAX2 callbacks, which are
unset: no element reaches SIPE, so it shows no contact list, subscribes to no presence and
never publishes, whatever the server sends (3P, 2026-12-03: a 15-line C program with the
same handler sees 0 elements, 3 with the flag cleared).

The fix is the program's (or the distribution's), not the server's: to judge sipemu's front
end against SIPE's *intended* behaviour, the SIPE driver starts finch with this library in
``LD_PRELOAD``.  It wraps ``xmlSAXUserParseMemory`` only: a handler flagged SAX2 that has a
SAX1 ``startElement`` and no ``startElementNs`` is passed on as a SAX1 handler (a copy, the
flag cleared); any other call goes through unchanged.  Written for sipemu (no code taken
from pidgin-sipe or libxml2); built with the system C compiler on first use, against
libxml2's headers (Debian ``gcc`` and ``libxml2-dev``).

Rules of this file: no state but the built library's path; every failure is a
:class:`ShimError` whose message is one sentence naming the missing package.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

__all__ = ["SOURCE", "ShimError", "build", "problem"]

SOURCE = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <string.h>
#include <libxml/parser.h>

typedef int (*parse_fn)(xmlSAXHandlerPtr, void *, const char *, int);

int xmlSAXUserParseMemory(xmlSAXHandlerPtr sax, void *user_data, const char *buffer, int size)
{
    static parse_fn real;
    if (real == NULL)
        real = (parse_fn)dlsym(RTLD_NEXT, "xmlSAXUserParseMemory");
    if (sax != NULL && sax->initialized == XML_SAX2_MAGIC && sax->startElementNs == NULL
        && sax->startElement != NULL) {
        xmlSAXHandler sax1;
        memcpy(&sax1, sax, sizeof sax1);
        sax1.initialized = 1;
        return real(&sax1, user_data, buffer, size);
    }
    return real(sax, user_data, buffer, size);
}
"""

HEADERS = Path("/usr/include/libxml2/libxml/parser.h")


class ShimError(Exception):
    """The shim cannot be built here (one sentence)."""


def problem() -> str | None:
    """Why the shim cannot be built here, or None."""
    if shutil.which("gcc") is None:
        return "no C compiler to build the XML shim for pidgin-sipe: apt-get install -y gcc"
    if not HEADERS.exists():
        return (
            "libxml2's headers are missing to build the XML shim for pidgin-sipe: "
            "apt-get install -y libxml2-dev"
        )
    return None


def build(cache: Path | None = None) -> Path:
    """The shim's shared library, built once per source under ``cache`` (default: the user's
    cache directory, ``$XDG_CACHE_HOME/sipemu`` or ``~/.cache/sipemu``)."""
    reason = problem()
    if reason is not None:
        raise ShimError(reason)
    if cache is None:
        base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
        cache = Path(base) / "sipemu"
    digest = hashlib.sha256(SOURCE.encode()).hexdigest()[:12]
    library = cache / f"sipe-xml-shim-{digest}.so"
    if library.exists():
        return library
    cache.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=cache) as work:
        source = Path(work) / "shim.c"
        source.write_text(SOURCE)
        built = Path(work) / "shim.so"
        done = subprocess.run(
            [
                "gcc",
                "-shared",
                "-fPIC",
                "-O2",
                f"-I{HEADERS.parent.parent}",
                "-o",
                str(built),
                str(source),
                "-ldl",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            first = (done.stderr.strip().splitlines() or ["no output"])[0]
            raise ShimError(f"the XML shim for pidgin-sipe did not build: {first}")
        os.replace(built, library)  # atomic: two runs building at once both end with one file
    return library
