"""The README's code blocks, for the test suite and for CI (standard library only).

A fenced block is ``(tag, language, code)``; ``tag`` comes from an HTML comment on
the line before the fence, ``<!-- ci: NAME -->``: CI runs the blocks tagged ``install``
and ``test`` itself, exactly as written; ``tests/test_readme.py`` runs every other
``bash`` and ``python`` block.

Usage (prints the code of the block tagged NAME)::

    python tests/readme_blocks.py install
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"
_TAG = re.compile(r"<!--\s*ci:\s*(\w+)\s*-->")


def blocks(path: Path = README) -> list[tuple[str | None, str, str]]:
    out, lines = [], path.read_text().splitlines()
    i = 0
    while i < len(lines):
        if lines[i].startswith("```"):
            lang = lines[i][3:].strip()
            j = next(k for k in range(i + 1, len(lines)) if lines[k].startswith("```"))
            prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            tag = _TAG.fullmatch(prev.strip())
            out.append((tag.group(1) if tag else None, lang, "\n".join(lines[i + 1:j]) + "\n"))
            i = j
        i += 1
    return out


def tagged(name: str) -> str:
    found = [code for tag, _, code in blocks() if tag == name]
    if len(found) != 1:
        raise SystemExit(f"README.md has {len(found)} blocks tagged 'ci: {name}', not one")
    return found[0]


if __name__ == "__main__":
    sys.stdout.write(tagged(sys.argv[1]))
