"""``pinfactory verify`` and ``pinfactory docs add|search``."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeRemainingColumn
from rich.table import Table

from pinfactory.cli.common import JsonOption, clear_errors, console, err_console
from pinfactory.documents import DocumentStore
from pinfactory.documents.reader import DocumentError, read_document
from pinfactory.embeddings import cache_dir
from pinfactory.verify.batch import BatchError, parse_line, score_line
from pinfactory.verify.cross_training import export, train_cross, training_pairs
from pinfactory.verify.crossencoder import CrossEncoder, cross_encoder_path
from pinfactory.verify.datasets import data_root
from pinfactory.verify.grounding import GroundingChecker
from pinfactory.verify.support import SupportModel, head_path
from pinfactory.verify.training import refit_fusion, train, write

docs = typer.Typer(help="Ingest and search the document store.", no_args_is_help=True)
StoreOption = Annotated[Path, typer.Option("--store", help="SQLite document store")]
DEFAULT_STORE = Path("pinfactory-docs.db")


verify_app = typer.Typer(
    help="Check answers against evidence; score a JSONL file; train the checker.",
    invoke_without_command=True,
)
EXIT_CODES = {"supported": 0, "unverified": 0, "partly_supported": 2, "unsupported": 3,
              "contradicted": 4}  # fmt: skip
"""``pinfactory verify`` exits with the answer's label: 0 supported (or nothing to check),
2 partly supported, 3 unsupported, 4 contradicted; 1 is an input error."""


def register(app: typer.Typer) -> None:
    app.add_typer(verify_app, name="verify")
    app.add_typer(docs, name="docs")


@verify_app.callback()
def verify(
    ctx: typer.Context,
    answer: Annotated[str | None, typer.Option("--answer", help="the answer to check")] = None,
    evidence: Annotated[
        list[Path] | None, typer.Option("--evidence", help="evidence file(s)")
    ] = None,
    question: Annotated[str, typer.Option("--question", help="the question asked")] = "",
    as_json: JsonOption = False,
) -> None:
    """Check an answer's claims against evidence files.

    Exit status: 0 supported, 2 partly supported, 3 unsupported, 4 contradicted, 1 bad input.
    """
    if ctx.invoked_subcommand is not None:
        return
    if answer is None or not evidence:
        err_console.print(
            "[bold red]error:[/] give --answer TEXT and --evidence FILE (one or more), "
            "or a subcommand: batch, train",
            highlight=False,
        )
        raise typer.Exit(1)

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
    else:
        table = Table(title=f"{report.label} (confidence {report.score:.2f})")
        for column in ("claim", "label", "why", "passage"):
            table.add_column(column, overflow="fold")
        for check in report.claims:
            table.add_row(check.text, check.label, check.reason, check.passage[:160])
        for skipped in report.skipped:
            table.add_row(skipped.text, "[dim]skipped[/]", skipped.reason, "")
        console.print(table)
    raise typer.Exit(EXIT_CODES[report.label])


@verify_app.command("batch")
def verify_batch(
    source: Annotated[Path, typer.Argument(help="JSONL: id, answer, evidence, question?")],
    out: Annotated[Path, typer.Option("--out", help="JSONL to write")],
) -> None:
    """Score every line of SOURCE; write {id, label, confidence, findings} lines to --out.

    A line that is not valid is written as {id, error} and the command exits 1 at the end.
    """

    try:
        lines = source.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        err_console.print(f"[bold red]error:[/] {source}: {exc.strerror or exc}", highlight=False)
        raise typer.Exit(1) from None
    checker = GroundingChecker()
    errors = 0
    with (
        out.open("w", encoding="utf-8") as handle,
        _progress() as progress,
    ):
        task = progress.add_task("verifying", total=len([x for x in lines if x.strip()]))
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = score_line(checker, parse_line(line, number))
            except BatchError as exc:
                errors += 1
                record = {"id": exc.id, "line": number, "error": exc.message}
            handle.write(json.dumps(record) + "\n")
            progress.advance(task)
    console.print(f"wrote {out} ({errors} line(s) with errors)" if errors else f"wrote {out}")
    if errors:
        raise typer.Exit(1)


@verify_app.command("train")
def verify_train(
    data: Annotated[
        Path | None, typer.Option("--data", help="shared/data (default: found above here)")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", help="where the weights go (default: the package)")
    ] = None,
    work: Annotated[
        Path | None, typer.Option("--work", help="feature cache (default: the cache folder)")
    ] = None,
    seed: Annotated[int, typer.Option(help="random seed (sampling, head initialisation)")] = 0,
    per_nli: Annotated[int, typer.Option(help="pairs sampled from FEVER-NLI and MNLI each")] = 6000,
    hidden: Annotated[int, typer.Option(help="hidden units of the head")] = 32,
    threads: Annotated[int, typer.Option(help="torch threads for the encoder")] = 1,
    fusion_only: Annotated[
        bool,
        typer.Option(
            "--fusion-only", help="keep the packaged head; refit only the answer calibration"
        ),
    ] = False,
    cross: Annotated[
        bool,
        typer.Option(
            "--cross", help="with --fusion-only: fuse the packaged cross-encoder's scores too"
        ),
    ] = False,
    dev_limit: Annotated[
        int, typer.Option(help="with --fusion-only: answers sampled per dev set (0: all)")
    ] = 0,
) -> None:
    """Train the support model's head, then fit the fused answer calibration and choose
    the claim and answer thresholds on development data only."""

    with clear_errors():
        try:
            root = data or data_root(Path.cwd())
        except FileNotFoundError as exc:
            err_console.print(f"[bold red]error:[/] {exc}; pass --data", highlight=False)
            raise typer.Exit(1) from None
        checker = GroundingChecker(model=SupportModel(threads=threads, cache_size=20000))
        with _progress() as bar:
            tasks: dict[str, Any] = {}
            last = [0.0]

            def progress(phase: str, done: int, total: int) -> None:
                if phase not in tasks:
                    tasks[phase] = bar.add_task(phase, total=total)
                bar.update(tasks[phase], completed=done)
                if not err_console.is_terminal and time.monotonic() - last[0] > 30:
                    last[0] = time.monotonic()
                    err_console.print(f"{phase}: {done}/{total}", highlight=False)

            folder = work or cache_dir() / "grounding-train"
            if fusion_only:
                scorer = CrossEncoder(threads=threads) if cross else None
                result = refit_fusion(root, folder, seed, per_nli, progress, scorer, dev_limit)
            else:
                result = train(root, folder, seed, per_nli, hidden, progress, checker)
        paths = write(result, out or head_path().parent, with_head=not fusion_only)
    console.print_json(json.dumps(result.metrics))
    for path in paths:
        console.print(f"wrote {path} ({path.stat().st_size:,} bytes)")


@verify_app.command("train-cross")
def verify_train_cross(
    data: Annotated[
        Path | None, typer.Option("--data", help="shared/data (default: found above here)")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="where the float16 weights go (default: the package)"),
    ] = None,
    work: Annotated[Path, typer.Option("--work", help="checkpoints and progress.jsonl")] = Path(
        "grounding-cross"
    ),
    seed: Annotated[int, typer.Option(help="random seed (sampling, order, initialisation)")] = 0,
    per_nli: Annotated[int, typer.Option(help="pairs sampled from FEVER-NLI and MNLI each")] = 5000,
    max_steps: Annotated[int, typer.Option(help="optimiser steps at most", min=1)] = 1000,
    batch_size: Annotated[int, typer.Option(help="pairs a step", min=1)] = 16,
    lr: Annotated[float, typer.Option(help="peak learning rate (AdamW)")] = 5e-5,
    minutes: Annotated[
        float, typer.Option(help="stop after this long whatever the step (0: no limit)")
    ] = 0.0,
    threads: Annotated[int, typer.Option(help="torch threads")] = 1,
) -> None:
    """Fine-tune the MiniLM cross-encoder on the training data (never WiCE, SummaC or
    HaluEval), then write its float16 weights. Fuse it with `verify train --fusion-only
    --cross` afterwards (thresholds and calibration on development data only)."""

    try:
        root = data or data_root(Path.cwd())
    except FileNotFoundError as exc:
        err_console.print(f"[bold red]error:[/] {exc}; pass --data", highlight=False)
        raise typer.Exit(1) from None
    pairs = training_pairs(root, per_nli, seed)
    deadline = time.time() + minutes * 60 if minutes > 0 else None
    with _progress() as bar:
        task = bar.add_task(f"fine-tuning on {len(pairs):,} pairs", total=max_steps)

        def progress(step: int, total: int, loss: float) -> None:
            bar.update(task, completed=step, total=total, description=f"loss {loss:.3f}")

        summary = train_cross(
            pairs, work, seed=seed, batch_size=batch_size, lr=lr, max_steps=max_steps,
            deadline=deadline, threads=threads, progress=progress,
        )  # fmt: skip
    weights = export(work / "checkpoint", out or cross_encoder_path())
    (weights.parent / "training.json").write_text(json.dumps(summary, indent=2) + "\n")
    console.print_json(json.dumps(summary))
    console.print(f"wrote {weights} ({weights.stat().st_size:,} bytes)")


def _progress() -> Any:
    """A progress bar on stderr: description, bar, done/total, time left."""

    return Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
    )


@docs.command("add")
def docs_add(
    paths: Annotated[list[Path], typer.Argument(help="files or folders")],
    store: StoreOption = DEFAULT_STORE,
) -> None:
    """Ingest .txt, .md, .html and .pdf files; bad files are reported, the rest go in."""

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
