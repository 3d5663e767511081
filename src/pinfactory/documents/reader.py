"""Turning a file into plain text: .txt, .md, .html and .pdf (with a text layer).

Every way a file can be unusable is a :class:`DocumentError` naming the file
and what is allowed, so a batch can report it and go on with the rest.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

from pinfactory.errors import RequestError

SUFFIXES = (".txt", ".md", ".markdown", ".html", ".htm", ".pdf")
MAX_BYTES = 20 * 1024 * 1024


class DocumentError(RequestError):
    """A document that cannot be ingested: unreadable, empty, unsupported or too large."""

    code = "document_invalid"

    def __init__(self, path: Path | str, problem: str) -> None:
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


def read_document(path: Path, *, max_bytes: int = MAX_BYTES) -> tuple[str, str]:
    """(title, text) of a document file."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        allowed = ", ".join(SUFFIXES)
        raise DocumentError(path, f"unsupported format '{suffix or '(none)'}'; allowed: {allowed}")
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise DocumentError(path, f"{size:,} bytes is over the limit of {max_bytes:,}")
        raw = path.read_bytes()
    except OSError as exc:
        raise DocumentError(path, f"cannot read: {exc.strerror or exc}") from exc
    if suffix == ".pdf":
        title, text = _pdf(path, raw)
    else:
        try:
            decoded = raw.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise DocumentError(path, f"not UTF-8 text (byte {exc.start})") from exc
        title, text = _html(decoded) if suffix in (".html", ".htm") else ("", decoded)
        if suffix in (".md", ".markdown"):
            title, text = _markdown(text)
    text = re.sub(r"[ \t]+", " ", text).strip()
    if not text:
        raise DocumentError(path, "no text in the document")
    return title or path.stem, text


def _markdown(text: str) -> tuple[str, str]:
    heading = re.search(r"^#\s+(.+)$", text, re.MULTILINE)
    body = re.sub(r"^#{1,6}\s+(.+)$", r"\1.", text, flags=re.MULTILINE)
    body = re.sub(r"[*_`]{1,3}([^*_`]+)[*_`]{1,3}", r"\1", body)
    body = re.sub(r"\[([^\]]+)\]\([^)]+\)", r"\1", body)
    return (heading.group(1).strip() if heading else ""), body


class _TextOfHtml(HTMLParser):
    BLOCKS = frozenset(
        [
            "p",
            "div",
            "br",
            "li",
            "h1",
            "h2",
            "h3",
            "h4",
            "h5",
            "h6",
            "tr",
            "section",
            "article",
            "header",
            "footer",
        ]
    )
    SKIP = frozenset(("script", "style", "noscript", "template"))

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.title: list[str] = []
        self._skip = 0
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:  # noqa: ARG002
        if tag in self.SKIP:
            self._skip += 1
        elif tag == "title":
            self._in_title = True
        elif tag in self.BLOCKS:
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in self.SKIP:
            self._skip = max(0, self._skip - 1)
        elif tag == "title":
            self._in_title = False
        elif tag in self.BLOCKS:
            if tag[0] == "h" and tag[1:].isdigit():
                self.parts.append(".")  # a heading ends a sentence
            self.parts.append("\n\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title.append(data)
        elif not self._skip:
            self.parts.append(data)


def _html(markup: str) -> tuple[str, str]:
    parser = _TextOfHtml()
    parser.feed(markup)
    parser.close()
    text = re.sub(r"\n\s*\n\s*", "\n\n", "".join(parser.parts))
    return " ".join("".join(parser.title).split()), text


def _pdf(path: Path, raw: bytes) -> tuple[str, str]:

    # pypdf (about 0.15 s to import) loads only for a PDF
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(BytesIO(raw))
        pages = [page.extract_text() or "" for page in reader.pages]
        title = str(reader.metadata.title) if reader.metadata and reader.metadata.title else ""
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise DocumentError(path, f"not a readable PDF: {exc}") from exc
    text = "\n\n".join(p.strip() for p in pages if p.strip())
    if not text:
        raise DocumentError(path, "PDF has no text layer (scanned images need OCR first)")
    return title, text
