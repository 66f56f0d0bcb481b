"""`himbench models`: the registered models and methods, one namespace, with parameter counts."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import click

from himbench.cli.errors import Command

__all__ = ["NameInfo", "command", "list_names"]


@dataclass
class NameInfo:
    """One name of the namespace: ``kind`` is ``model``, ``method`` or ``model+method`` (a method named like a model
    runs that model); ``runs`` the registered models it runs; ``num_params`` the learned parameters of those models
    (0 for methods without learned parts); ``input_size`` the first model's square input side in pixels."""

    name: str
    kind: str
    runs: list[str]
    num_params: int
    input_size: int | None
    provider: str
    description: str
    mask_guided: bool
    default_weights: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


def list_names(pattern: str | None = None) -> list[NameInfo]:
    """Every registered model and method whose name matches the fnmatch ``pattern`` (all when None), sorted by name.
    Each model is built on the CPU to count its parameters."""
    import fnmatch

    from himbench.registry import list_methods, list_models, method_entry, model_info

    models = set(list_models())
    methods = set(list_methods())
    cache: dict[str, Any] = {}

    def info(model: str):
        if model not in cache:
            cache[model] = model_info(model)
        return cache[model]

    rows: list[NameInfo] = []
    for name in sorted(models | methods):
        if pattern is not None and not fnmatch.fnmatch(name, pattern):
            continue
        entry = method_entry(name)
        if name in models:
            model = info(name)
            rows.append(NameInfo(
                name=name,
                kind="model+method" if entry is not None else "model",
                runs=[name],
                num_params=model.num_params,
                input_size=model.input_size,
                provider=model.module.split(".")[0],
                description=model.description,
                mask_guided=model.mask_guided,
                default_weights=model.default_weights,
                config=model.config,
            ))
            continue
        assert entry is not None
        runs = [m for m in entry.models if m in models]
        rows.append(NameInfo(
            name=name,
            kind="method",
            runs=list(entry.models),
            num_params=sum(info(m).num_params for m in runs),
            input_size=info(runs[-1]).input_size if runs else None,
            provider=entry.module.split(".")[0],
            description=entry.description,
            mask_guided=entry.mask_guided,
        ))
    return rows


@click.command("models", cls=Command)
@click.option("--json", "as_json", is_flag=True, help="Print the table as JSON (with each model's full config).")
@click.argument("pattern", required=False)
def command(as_json: bool, pattern: str | None) -> None:
    """List registered models and methods (optionally those matching the fnmatch PATTERN, e.g. 'e2ehim-*'): one
    namespace, a KIND column says which. A method named like a model runs that model; `runs` names the models a
    method runs. Parameter counts, fp32 weight size and input size are those of the models run (each is built on the
    CPU to count them)."""
    import json
    from dataclasses import asdict

    infos = list_names(pattern)
    if as_json:
        click.echo(json.dumps([asdict(info) for info in infos], indent=2))
        return
    rows = [("name", "kind", "params", "fp32 MiB", "input", "runs", "provider", "description")]
    for info in infos:
        rows.append(
            (
                info.name,
                info.kind,
                f"{info.num_params / 1e6:.2f} M",
                f"{info.num_params * 4 / 2**20:.1f}",
                str(info.input_size or "-"),
                "+".join(info.runs) if info.runs else "-",
                info.provider,
                info.description + (" [mask-guided]" if info.mask_guided and info.kind == "model" else ""),
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    for row in rows:
        click.echo("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False)) + "  " + row[-1])
