"""`arc-ttt kaggle ...`: bundle, export-model, notebook, rehearse, run, timeline.

Mounted by solve/cli/app.py as a sub-app (`app.add_typer(kaggle_app, name="kaggle")`); also runnable as
`python -m solve.cli.kaggle` (the notebook uses that for the timeline). Module-level imports stay
light: each command imports what it needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

kaggle_app = typer.Typer(add_completion=False, no_args_is_help=True, help="The Kaggle kernel: bundle, rehearse, run.")


@kaggle_app.command()
def bundle(
    out: Annotated[Path, typer.Option("--out", help="dataset folder to create (or refresh)")],
    download: Annotated[bool, typer.Option(help="download pinned dependency wheels for Kaggle (network)")] = True,
    owner: Annotated[str, typer.Option(help="Kaggle username for dataset-metadata.json")] = "YOUR-KAGGLE-USERNAME",
    slug: Annotated[str, typer.Option(help="dataset slug")] = "arc-ttt-bundle",
) -> None:
    """Build the Kaggle dataset that installs arc-ttt offline (wheels, configs, metadata)."""
    from solve.kernel.bundle import build_bundle

    m = build_bundle(out, download=download, owner=owner, slug=slug)
    typer.echo(f"{out}: {len(m.wheels)} wheel(s), {m.total_bytes / 1e6:.1f} MB; {len(m.pins)} pinned dependencies"
               + ("" if download else " (not downloaded: --no-download)"))
    for name in m.missing:
        typer.echo(f"MISSING wheel for {name}=={m.pins[name]}", err=True)
    if m.missing:
        raise typer.Exit(1)


@kaggle_app.command("export-model")
def export_model_cmd(
    out: Annotated[Path, typer.Option("--out", help="folder to write model/ and tokenizer/ into")],
    source: Annotated[str, typer.Option("--source", help="any model source: smollm2-135m, a .gguf, an HF dir, random:tiny")] = "smollm2-135m",
    link: Annotated[bool, typer.Option(help="symlink files of an HF-dir source instead of saving (rehearsals only)")] = False,
) -> None:
    """Write a model in the Kaggle dataset layout (model/ + tokenizer/) via save_pretrained."""
    from solve.kernel.export_model import export_model

    export_model(source, out, link=link)
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    typer.echo(f"{out}: model/ + tokenizer/ ({size / 1e6:.1f} MB)")


@kaggle_app.command()
def notebook(
    out: Annotated[Path, typer.Option("--out", help="folder for kernel.ipynb and kernel-metadata.json")] = Path("kaggle"),
    owner: Annotated[str, typer.Option(help="Kaggle username")] = "YOUR-KAGGLE-USERNAME",
    bundle_slug: Annotated[str, typer.Option("--bundle", help="bundle dataset slug")] = "arc-ttt-bundle",
    model_slug: Annotated[str, typer.Option("--model", help="model dataset slug")] = "arc-ttt-model",
) -> None:
    """(Re)write kaggle/kernel.ipynb and kaggle/kernel-metadata.json."""
    from solve.kernel.notebook import write_notebook

    for p in write_notebook(out, owner=owner, bundle=bundle_slug, model=model_slug):
        typer.echo(str(p))


@kaggle_app.command()
def rehearse(
    deadline: Annotated[float, typer.Option(help="global deadline in seconds from kernel start")] = 180.0,
    tasks: Annotated[int, typer.Option(help="tasks (the smallest of ARC-AGI-2 evaluation)")] = 4,
    config: Annotated[Path, typer.Option(help="run config")] = Path("configs/kaggle-rehearsal.yaml"),
    model: Annotated[str, typer.Option(help="model source exported into the fake model dataset")] = "smollm2-135m",
    overrides: Annotated[Optional[list[str]], typer.Option("--set", help="config override (repeatable)")] = None,
    root: Annotated[Optional[Path], typer.Option(help="keep the fake /kaggle tree here (default: a temp dir)")] = None,
    plot: Annotated[Optional[Path], typer.Option(help="also write the timeline PNG here")] = None,
) -> None:
    """Run the kernel entry point against a fake /kaggle tree on this machine and check the result."""
    import tempfile

    from solve.kernel.rehearse import rehearse as run_rehearsal
    from solve.kernel.rehearse import report_text

    where = root or Path(tempfile.mkdtemp(prefix="arc-ttt-rehearsal-"))
    r = run_rehearsal(where, tasks, deadline, config, model, overrides or [])
    typer.echo(report_text(r))
    typer.echo(f"fake Kaggle tree: {where}")
    if plot:
        _plot(r.fake.working, plot)
    if r.rc != 0 or r.problems or (r.overrun_s is not None and r.overrun_s > 5.0):
        typer.echo(r.output[-4000:], err=True)
        raise typer.Exit(1)


# Every argument, --help included, goes to the kernel's own parser, so `--help` lists its real options.
@kaggle_app.command("run", context_settings={"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []})
def run_cmd(ctx: typer.Context) -> None:
    """The kernel entry point: `--help` lists its options (those of `python -m solve.kernel.main`)."""
    from solve.kernel.main import main

    raise typer.Exit(main(ctx.args))


@kaggle_app.command()
def timeline(
    run_dir: Annotated[Path, typer.Argument(help="run directory (holds timeline.jsonl)")],
    out: Annotated[Optional[Path], typer.Option("--out", help="PNG to write")] = None,
) -> None:
    """Print the run's timeline (planned vs actual per task) and optionally plot it."""
    from solve.kernel.timeline import load_spans, read_kernel, timeline_text

    if not (run_dir / "timeline.jsonl").is_file():
        typer.echo(f"{run_dir}/timeline.jsonl not found", err=True)
        raise typer.Exit(2)
    typer.echo(timeline_text(load_spans(run_dir), read_kernel(run_dir)))
    if out:
        _plot(run_dir, out)


def _plot(run_dir: Path, out: Path) -> None:
    from solve.kernel.timeline import load_spans, plot_timeline, read_kernel

    typer.echo(f"plot: {plot_timeline(load_spans(run_dir), out, read_kernel(run_dir), title=f'arc-ttt timeline: {run_dir}')}")


if __name__ == "__main__":
    kaggle_app()
