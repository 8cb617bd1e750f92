"""`agent-tasks image build`: the worker image (and the base `sandbox: docker` uses) with no registry."""

from __future__ import annotations

import json

import typer

from tasks_lib.cli.common import CliError, err, out

image_app = typer.Typer(
    help="The worker image and the sandbox base image, built with no registry.", no_args_is_help=True
)


@image_app.command("build")
def build(
    base: str = typer.Option(
        None, "--base", help="A root file system folder or tarball to import, or an image this engine holds."
    ),
    tag: str = typer.Option("agent-tasks-worker:latest", "--tag", help="The worker image's name."),
    base_tag: str = typer.Option(
        "agent-tasks-base:bookworm",
        "--base-tag",
        help="The name of the base made or imported (sandbox: docker's image).",
    ),
    base_only: bool = typer.Option(False, "--base-only", help="Make the base image only."),
    mirror: str = typer.Option("http://deb.debian.org/debian", "--mirror", help="The Debian mirror for the base."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Build the worker image from this checkout's Dockerfile on a Debian base made from packages (cached)."""
    from tasks_lib.ops.image import ImageBuildError
    from tasks_lib.ops.image import build as build_image

    try:
        report = build_image(tag, base, base_tag, base_only, mirror, say=lambda line: err.print(line))
    except ImageBuildError as exc:
        raise CliError(str(exc)) from None
    if as_json:
        out.print_json(json.dumps(report.model_dump()))
        return
    out.print(f"{report.image}  {report.size_bytes / 1e6:.0f} MB  (base {report.base})")
    for name, version in report.holds.items():
        out.print(f"  {name:<20} {version}")
    timings = ", ".join(f"{step} {seconds:.0f} s" for step, seconds in report.seconds.items())
    out.print(f"  {'took':<20} {timings}")
