"""Ingestion: each bad file gets its own clear error, the rest of the batch goes in."""

from __future__ import annotations

import itertools
from pathlib import Path

from pypdf import PdfWriter

from pinfactory.documents import DocumentStore
from pinfactory.documents.store import chunk_text
from pinfactory.members.retrieval import demo_documents


def test_a_batch_with_bad_files_still_ingests_the_good_ones(tmp_path: Path) -> None:
    (tmp_path / "good.txt").write_text("Pins are made in Leeds. They ship worldwide.")
    (tmp_path / "page.html").write_text(
        "<html><head><title>Hours</title><script>var x = 'secret';</script></head>"
        "<body><h1>Hours</h1><p>Open 9 to 5.</p></body></html>"
    )
    (tmp_path / "empty.md").write_text("   \n")
    (tmp_path / "sheet.docx").write_bytes(b"PK\x03\x04")
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00bad")
    (tmp_path / "big.txt").write_text("word " * 400)
    writer = PdfWriter()
    writer.add_blank_page(width=200, height=200)
    with (tmp_path / "scan.pdf").open("wb") as handle:
        writer.write(handle)
    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with DocumentStore(tmp_path / "store.db", max_bytes=1000) as store:
        report = store.add_files([tmp_path, tmp_path / "missing.txt"])
        failed = {Path(path).name: problem for path, problem in report.failed}
        assert sorted(Path(p).name for p, _ in report.added) == ["good.txt", "page.html"]
        assert failed["empty.md"] == "no text in the document"
        assert failed["sheet.docx"].startswith("unsupported format '.docx'; allowed:")
        assert "not UTF-8" in failed["binary.txt"]
        assert "over the limit of 1,000" in failed["big.txt"]
        assert "no text layer" in failed["scan.pdf"]
        assert "not a readable PDF" in failed["broken.pdf"]
        assert "cannot read" in failed["missing.txt"]
        hits = store.search("when are you open", 2)
        assert hits[0].title == "Hours" and "Open 9 to 5" in hits[0].text
        assert "secret" not in " ".join(h.text for h in hits)
        again = store.add_files([tmp_path / "good.txt"])
        assert again.unchanged == [str(tmp_path / "good.txt")]


def test_chunks_overlap_by_a_sentence() -> None:
    text = " ".join(f"Sentence number {i} is here." for i in range(40))
    chunks = chunk_text(text, chunk_words=20, overlap=1)
    assert len(chunks) > 3
    for first, second in itertools.pairwise(chunks):
        assert first.rsplit(". ", 1)[-1].rstrip(".") in second.split(". ", 1)[0]


def test_hybrid_search_over_the_demo_documents() -> None:
    with DocumentStore() as store:
        store.add_files([demo_documents()])
        assert store.search("how much is express delivery", 1)[0].title == "Shipping policy"
        assert store.search("pin press warranty years", 1)[0].title == "Warranty"
