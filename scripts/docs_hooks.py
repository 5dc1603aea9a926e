"""MkDocs hook: a page's `<!-- reference: NAME -->` becomes the reference generated from the code
(`scripts/docs_reference.py`), at every build, so the site's reference is the code's."""

from __future__ import annotations

import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import docs_reference  # noqa: E402 (beside this file)

MARKER = re.compile(r"<!-- reference: ([a-z-]+) -->")


def on_page_markdown(markdown: str, page, config, files) -> str:  # noqa: ANN001 (MkDocs' hook signature)
    return MARKER.sub(lambda m: docs_reference.render(m.group(1)), markdown)
