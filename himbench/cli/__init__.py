"""The ``himbench`` command line.

Every sub-command lives in its own module under :mod:`himbench.cli` and is imported only when it runs, so
``himbench --help`` stays fast and never imports torch. To add a command, write ``himbench/cli/<name>.py`` defining
a click command called ``command`` (with ``cls=himbench.cli.errors.Command``; shared options such as ``--engine``
come from :mod:`himbench.cli.options`) and list it in :data:`COMMANDS` with its one-line help.

Input errors end one way for every command: an :class:`himbench.io.InputError` (or a
:class:`~himbench.cli.errors.UserError`) is one line on stderr and exit status 2 (:mod:`himbench.cli.errors`).
"""

from __future__ import annotations

import importlib

import click

from himbench.cli.errors import invoke_mapping_input_errors

__all__ = ["COMMANDS", "main"]

# name -> (module under himbench.cli, one-line help shown by `himbench --help`)
COMMANDS: dict[str, tuple[str, str]] = {
    "demo": ("demo", "Run the whole pipeline on the embedded default data (no downloads)."),
    "build-dataset": ("build_dataset", "Synthesise HIM training/test data into Parquet shards."),
    "export-him2k": ("export_him2k", "Export built shards to the HIM-2K folder layout."),
    "export-vhim": ("export_vhim", "Export a --video build to MaGGIe's V-HIM folder layout."),
    "evaluate": ("evaluate", "Score a prediction folder (HIM-2K layout) against ground truth."),
    "compare": ("compare", "Paired bootstrap: is method A's score different from B's on the same images?"),
    "models": ("models", "List registered models and methods (one namespace) with parameter counts."),
    "train": ("train", "Train a registered model on built shards."),
    "import-checkpoint": ("import_checkpoint", "Convert the authors' released weights (.ckpt/.pth) safely."),
    "predict": ("predict", "Predict instance mattes for images into a HIM-2K prediction folder."),
    "bench": ("bench", "Benchmark methods: accuracy and cost on the same data."),
    "leaderboard": ("leaderboard", "Render leaderboard tables and plots from the CSV source."),
    "push-to-hub": ("push_to_hub", "Upload built shards and their card to the Hugging Face Hub."),
}


class _LazyGroup(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module_name, _ = COMMANDS[cmd_name]
        module = importlib.import_module(f"himbench.cli.{module_name}")
        return module.command

    def invoke(self, ctx: click.Context):
        # The one place input errors are mapped for the whole CLI (also covers a plugin's command that does not
        # use himbench's Command class): one line and exit 2, never a traceback.
        return invoke_mapping_input_errors(super().invoke, ctx)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        # Use the static help strings so that listing commands imports nothing.
        rows = [(name, COMMANDS[name][1]) for name in self.list_commands(ctx)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110})
@click.version_option(package_name="himbench")
def main() -> None:
    """himbench: build human instance matting data, score predictions with instance-aware metrics, and compare
    E2E-HIM with two-stage baselines on one leaderboard.

    Start with `himbench demo`, which runs everything on the embedded default data.
    Every command explains its options with `himbench COMMAND --help`.
    """
