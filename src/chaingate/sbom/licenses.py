"""License strings as packages state them, mapped to SPDX where that is unambiguous.

Policy and scanning tools match SPDX identifiers, so an identifier is worth
recovering from the many spellings ecosystems use ("Apache 2.0", "GPLv2+",
trove classifiers). Where the mapping would be a guess ("BSD License" could be
two- or three-clause) the package's own words are kept as a license name
instead: a wrong SPDX id is worse than none.
"""

from __future__ import annotations

import re
from functools import lru_cache

from cyclonedx.spdx import fixup_id, is_expression

_ALIASES = {
    "apache 2": "Apache-2.0",
    "apache 2.0": "Apache-2.0",
    "apache-2": "Apache-2.0",
    "apache2": "Apache-2.0",
    "apache license 2.0": "Apache-2.0",
    "apache license v2.0": "Apache-2.0",
    "apache license, version 2.0": "Apache-2.0",
    "apache license version 2.0": "Apache-2.0",
    "apache software license 2.0": "Apache-2.0",
    "apache software license, version 2.0": "Apache-2.0",
    "the apache license, version 2.0": "Apache-2.0",
    "the apache software license, version 2.0": "Apache-2.0",
    "asl 2.0": "Apache-2.0",
    "mit license": "MIT",
    "the mit license": "MIT",
    "expat": "MIT",
    "expat license": "MIT",
    "new bsd license": "BSD-3-Clause",
    "modified bsd license": "BSD-3-Clause",
    "3-clause bsd license": "BSD-3-Clause",
    "bsd 3-clause": "BSD-3-Clause",
    "bsd-3": "BSD-3-Clause",
    "simplified bsd license": "BSD-2-Clause",
    "2-clause bsd license": "BSD-2-Clause",
    "bsd 2-clause": "BSD-2-Clause",
    "bsd-2": "BSD-2-Clause",
    "gplv2": "GPL-2.0-only",
    "gplv2+": "GPL-2.0-or-later",
    "gplv3": "GPL-3.0-only",
    "gplv3+": "GPL-3.0-or-later",
    "lgplv2": "LGPL-2.0-only",
    "lgplv2+": "LGPL-2.0-or-later",
    "lgplv2.1": "LGPL-2.1-only",
    "lgplv2.1+": "LGPL-2.1-or-later",
    "lgplv3": "LGPL-3.0-only",
    "lgplv3+": "LGPL-3.0-or-later",
    "agplv3": "AGPL-3.0-only",
    "agplv3+": "AGPL-3.0-or-later",
    "mpl 2.0": "MPL-2.0",
    "mpl-2": "MPL-2.0",
    "mozilla public license 2.0": "MPL-2.0",
    "isc license": "ISC",
    "iscl": "ISC",
    "psf": "PSF-2.0",
    "psfl": "PSF-2.0",
    "psf license": "PSF-2.0",
    "python software foundation license": "PSF-2.0",
    "zlib license": "Zlib",
    "zlib/libpng license": "Zlib",
    "cc0": "CC0-1.0",
    "cc0 1.0": "CC0-1.0",
    "the unlicense": "Unlicense",
    "eclipse public license 2.0": "EPL-2.0",
    "eclipse public license - v 2.0": "EPL-2.0",
    "eclipse public license 1.0": "EPL-1.0",
    "eclipse public license - v 1.0": "EPL-1.0",
    "boost software license 1.0": "BSL-1.0",
    "universal permissive license": "UPL-1.0",
}

#: Trove classifiers (after "License :: ") whose text names no version or variant in a way the
#: generic rules below can read.
_CLASSIFIERS = {
    "OSI Approved :: MIT License": "MIT",
    "OSI Approved :: MIT No Attribution License (MIT-0)": "MIT-0",
    "OSI Approved :: Apache Software License": "Apache-2.0",
    "OSI Approved :: GNU General Public License v2 (GPLv2)": "GPL-2.0-only",
    "OSI Approved :: GNU General Public License v2 or later (GPLv2+)": "GPL-2.0-or-later",
    "OSI Approved :: GNU General Public License v3 (GPLv3)": "GPL-3.0-only",
    "OSI Approved :: GNU General Public License v3 or later (GPLv3+)": "GPL-3.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v2 (LGPLv2)": "LGPL-2.0-only",
    "OSI Approved :: GNU Lesser General Public License v2 or later (LGPLv2+)": "LGPL-2.0-or-later",
    "OSI Approved :: GNU Lesser General Public License v3 (LGPLv3)": "LGPL-3.0-only",
    "OSI Approved :: GNU Lesser General Public License v3 or later (LGPLv3+)": "LGPL-3.0-or-later",
    "OSI Approved :: GNU Affero General Public License v3": "AGPL-3.0-only",
    "OSI Approved :: GNU Affero General Public License v3 or later (AGPLv3+)": "AGPL-3.0-or-later",
    "OSI Approved :: Mozilla Public License 2.0 (MPL 2.0)": "MPL-2.0",
    "OSI Approved :: ISC License (ISCL)": "ISC",
    "OSI Approved :: Python Software Foundation License": "PSF-2.0",
    "OSI Approved :: The Unlicense (Unlicense)": "Unlicense",
    "OSI Approved :: zlib/libpng License": "Zlib",
    "OSI Approved :: Universal Permissive License (UPL)": "UPL-1.0",
    "OSI Approved :: Historical Permission Notice and Disclaimer (HPND)": "HPND",
    "OSI Approved :: Boost Software License 1.0 (BSL-1.0)": "BSL-1.0",
    "CC0 1.0 Universal (CC0 1.0) Public Domain Dedication": "CC0-1.0",
}

_PAREN_ID = re.compile(r"\(([A-Za-z0-9.+-]+)\)\s*$")
#: The operators of a compound license field as rpm (Fedora's legacy tags), npm and PyPI write them.
_OPERATOR = re.compile(r"\s+(and|or)\s+|\s*([()])", re.IGNORECASE)


@lru_cache(maxsize=4096)
def spdx_id(value: str) -> str | None:
    """The SPDX identifier ``value`` spells, case and common aliases forgiven, else None."""
    value = value.strip()
    if not value:
        return None
    found = fixup_id(value)
    if found:
        return str(found)
    return _ALIASES.get(re.sub(r"\s+", " ", value.lower()))


@lru_cache(maxsize=4096)
def normalise(value: str) -> str | None:
    """An SPDX id or expression for ``value`` where recognisable, else the value as a name.

    Returns None for empty values and for whole license texts pasted into a
    one-line field (several lines or very long): those name nothing.
    """
    value = value.strip()
    if not value or value.upper() in ("UNKNOWN", "NONE", "NOASSERTION"):
        return None
    found = spdx_id(value)
    if found:
        return found
    if "\n" in value or len(value) > 200:
        return None
    return _compound(value) or value


def _compound(value: str) -> str | None:
    """``GPLv2+ and (MIT or ASL 2.0)`` as an SPDX expression, when every operand maps to an identifier.

    One operand that does not map ("BSD", "LGPLv2+ with exceptions") leaves
    the whole field as the package wrote it, as for a single license.
    """
    # split() with the two groups gives: operand, and|or, paren, operand, and|or, paren, ..., operand.
    pieces = _OPERATOR.split(value)
    tokens: list[str] = []
    operands = 0
    for i in range(0, len(pieces), 3):
        operand = pieces[i].strip()
        if operand:
            found = spdx_id(operand)
            if not found:
                return None
            tokens.append(found)
            operands += 1
        if i + 2 < len(pieces):
            tokens.append((pieces[i + 1] or pieces[i + 2]).upper())
    if operands < 2:
        return None
    expression = " ".join(tokens).replace("( ", "(").replace(" )", ")")
    return expression if is_expression(expression) else None


def from_classifier(classifier: str) -> str | None:
    """The license a ``License :: …`` trove classifier names, or None for other classifiers."""
    if not classifier.startswith("License :: "):
        return None
    rest = classifier[len("License :: ") :].strip()
    if rest in _CLASSIFIERS:
        return _CLASSIFIERS[rest]
    last = rest.rsplit(" :: ", 1)[-1]
    m = _PAREN_ID.search(last)
    if m and spdx_id(m.group(1)):
        return spdx_id(m.group(1))
    return spdx_id(last) or (None if last in ("OSI Approved", "Other/Proprietary License") else last)
