"""Text from a backend, a program or a record, made inert where it is rendered.

Any string in a record may come from code the harness does not control (an exception message,
build info, a protocol program's error text). Each renderer passes such text through the function
for its medium here, so a ``|`` cannot split a Markdown table, ``<script>`` cannot reach a page,
a cell cannot become a spreadsheet formula and an escape sequence cannot repaint a terminal.
(index.html goes through ``html.escape`` and pandas' escaping, which already do the job.)
"""

from __future__ import annotations

import re
import unicodedata

import pandas as pd

_MARKDOWN = {
    "\\": "\\\\",  # doubled: a backslash in the text cannot undo an escape added here
    "|": "\\|",
    "`": "\\`",
    "<": "&lt;",
    ">": "&gt;",
    "&": "&amp;",
}
_MARKDOWN_PATTERN = re.compile("|".join(re.escape(k) for k in _MARKDOWN))


def _visible(char: str) -> str:
    return f"\\x{ord(char):02x}" if ord(char) < 0x100 else f"\\u{ord(char):04x}"


def _is_control(char: str) -> bool:
    # Cc: C0, DEL and C1 (ESC and CSI among them); Cf: bidirectional overrides and the like,
    # which reorder what a reader sees without being visible themselves.
    return unicodedata.category(char) in ("Cc", "Cf") and char not in "\t"


def terminal(text: str, lines: bool = False) -> str:
    """``text`` with every control character shown as ``\\x1b`` and the like, on one line
    (or, with ``lines``, keeping its line breaks: a traceback)."""
    text = text.replace("\r\n", "\n")
    newline = "\n" if lines else " "
    return "".join(newline if c == "\n" else _visible(c) if _is_control(c) else c for c in text)


def markdown(text: str) -> str:
    """``text`` as literal Markdown on one line: table pipes, code spans and HTML made inert."""
    text = _MARKDOWN_PATTERN.sub(lambda m: _MARKDOWN[m.group(0)], terminal(text))
    return text.replace("](", "]\\(")  # no inline link: [label](javascript:…)


def markdown_table(frame: pd.DataFrame) -> str:
    """A pipe table of ``frame``'s text, every heading and cell escaped; ``None.`` when empty."""
    if frame.empty:
        return "None."
    safe = frame.map(lambda v: markdown(str(v)))
    safe.columns = [markdown(str(c)) for c in frame.columns]
    return safe.to_markdown(index=False, disable_numparse=True)


def fence(text: str, info: str = "") -> list[str]:
    """A fenced code block that ``text`` cannot close: its fence is longer than any backtick run
    inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    marks = "`" * max(3, longest + 1)
    return [marks + info, text, marks]


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def csv_cell(value: object) -> object:
    """A text cell a spreadsheet would read as a formula, quoted as OWASP advises (a leading
    apostrophe); numbers, negative ones included, stay numbers."""
    if isinstance(value, str) and value.startswith(_FORMULA_START):
        return "'" + value
    return value


def csv_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with every text cell and heading passed through ``csv_cell``."""
    safe = frame.map(csv_cell)
    safe.columns = [csv_cell(str(c)) for c in frame.columns]
    return safe
