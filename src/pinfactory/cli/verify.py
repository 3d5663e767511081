"""``pinfactory verify`` and ``pinfactory docs add|search``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from pinfactory.cli.common import JsonOption, clear_errors, console, err_console

docs = typer.Typer(help="Ingest and search the document store.", no_args_is_help=True)
StoreOption = Annotated[Path, typer.Option("--store", help="SQLite document store")]
DEFAULT_STORE = Path("pinfactory-docs.db")


def register(app: typer.Typer) -> None:
    app.command()(verify)
    app.add_typer(docs, name="docs")


def verify(
    answer: Annotated[str, typer.Option("--answer", help="the answer to check")],
    evidence: Annotated[list[Path], typer.Option("--evidence", help="evidence file(s)")],
    question: Annotated[str, typer.Option("--question", help="the question asked")] = "",
    as_json: JsonOption = False,
) -> None:
    """Check an answer's claims against evidence files."""
    from pinfactory.documents.reader import DocumentError, read_document
    from pinfactory.verify.grounding import GroundingChecker

    texts = []
    for path in evidence:
        try:
            texts.append(read_document(path)[1])
        except DocumentError as exc:
            err_console.print(f"[bold red]error:[/] {exc.message}", highlight=False)
            raise typer.Exit(1) from None
    report = GroundingChecker().assess(answer, texts, question=question)
    if as_json:
        print(json.dumps(report.to_dict(), indent=2))
        return
    table = Table(title=f"{report.label} (score {report.score:.2f})")
    for column in ("claim", "label", "why", "passage"):
        table.add_column(column, overflow="fold")
    for check in report.claims:
        table.add_row(check.text, check.label, check.reason, check.passage[:160])
    console.print(table)


@docs.command("add")
def docs_add(
    paths: Annotated[list[Path], typer.Argument(help="files or folders")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Ingest .txt, .md, .html and .pdf files; bad files are reported, the rest go in."""
    from pinfactory.documents import DocumentStore

    with clear_errors(), DocumentStore(store) as opened:
        report = opened.add_files(paths)
    table = Table(title=f"ingested into {store}")
    for column in ("file", "result"):
        table.add_column(column, overflow="fold")
    for path, chunks in report.added:
        table.add_row(path, f"[green]{chunks} chunks[/]")
    for path in report.unchanged:
        table.add_row(path, "[dim]already stored[/]")
    for path, problem in report.failed:
        table.add_row(path, f"[red]{problem}[/]")
    for path, instruction in report.flagged:
        table.add_row(path, f"[yellow]stored, flagged: contains an instruction {instruction!r}[/]")
    console.print(table)
    console.print(
        f"{len(report.added)} added ({report.chunks} chunks), {len(report.unchanged)} unchanged, "
        f"{len(report.failed)} failed"
    )
    if report.failed and not report.added and not report.unchanged:
        raise typer.Exit(1)


@docs.command("search")
def docs_search(
    query: Annotated[str, typer.Argument(help="what to look for")],
    store: StoreOption = DEFAULT_STORE,
    top_k: Annotated[int, typer.Option("--top-k", min=1)] = 4,
    as_json: JsonOption = False,
) -> None:
    """Hybrid (BM25 + embedding) search of the document store."""
    from pinfactory.documents import DocumentStore

    with clear_errors(), DocumentStore(store) as opened:
        hits = opened.search(query, top_k)
    if as_json:
        print(json.dumps([_hit(h) for h in hits], indent=2))
        return
    for n, hit in enumerate(hits, 1):
        console.print(f"[bold][{n}][/] {hit.title} [dim]({hit.source}, rrf {hit.score:.4f})[/]")
        console.print(f"    {hit.text[:300]}", highlight=False)


def _hit(hit: object) -> dict[str, object]:
    return {k: getattr(hit, k) for k in ("text", "title", "source", "score", "similarity", "bm25")}
