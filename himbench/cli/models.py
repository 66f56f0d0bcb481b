"""`himbench models`: the registered models with parameter counts."""

from __future__ import annotations

import click

__all__ = ["command"]


@click.command("models")
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON (with each model's full config).")
@click.argument("pattern", required=False)
def command(as_json: bool, pattern: str | None) -> None:
    """List registered models (optionally those matching the fnmatch PATTERN, e.g. 'e2ehim-*') with their parameter
    counts, fp32 weight size and default input size. Each model is built on the CPU to count its parameters."""
    import json

    from himbench.registry import list_models, model_info

    infos = [model_info(name) for name in list_models(pattern)]
    if as_json:
        click.echo(json.dumps([vars(info) for info in infos], indent=2))
        return
    rows = [("model", "params", "fp32 MiB", "input", "provider", "description")]
    for info in infos:
        rows.append(
            (
                info.name,
                f"{info.num_params / 1e6:.2f} M",
                f"{info.num_params * 4 / 2**20:.1f}",
                str(info.input_size or "-"),
                info.module.split(".")[0],
                info.description,
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
