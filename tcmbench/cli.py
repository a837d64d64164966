"""The ``tcmbench`` command line.

Sub-commands live in ``tcmbench.commands.*`` and are imported only when
invoked (``tcmbench --help`` must stay under a second and never import
torch). Plugins add commands through the ``register_commands`` hook. Every
:class:`tcmbench.errors.TcmbenchError` is printed as one line and exits 2:
bad input never ends in a traceback.
"""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from tcmbench import __version__

# name -> (module, attribute, one-line help). The help is repeated here so the
# top-level --help can list commands without importing them.
CORE_COMMANDS: dict[str, tuple[str, str, str]] = {
    "datasets": (
        "tcmbench.commands.datasets",
        "datasets",
        "List, inspect, verify, prepare and export datasets.",
    ),
    "score": (
        "tcmbench.commands.score",
        "score",
        "Score prediction files against ground truth with an official protocol.",
    ),
    "evaluate": (
        "tcmbench.commands.evaluate",
        "evaluate",
        "Run a detector on a dataset split and score it.",
    ),
    "predict": (
        "tcmbench.commands.predict",
        "predict",
        "Detect text in images and draw the polygons.",
    ),
    "train": (
        "tcmbench.commands.train",
        "train",
        "Train a detector (optionally with --tcm) on one or more datasets.",
    ),
    "compare": (
        "tcmbench.commands.compare",
        "compare",
        "Paired bootstrap: is run B's hmean really different from run A's?",
    ),
    "experiment": (
        "tcmbench.commands.experiment",
        "experiment",
        "Run the papers' experiments as grids of train/evaluate cells; report them.",
    ),
    "bench": (
        "tcmbench.commands.bench",
        "bench",
        "Parameters, GFLOPs, latency and throughput of a detector.",
    ),
    "export": (
        "tcmbench.commands.export",
        "export",
        "Export checkpoints to other runtimes.",
    ),
    "hub": ("tcmbench.commands.hub", "hub", "Push and pull checkpoints on the Hugging Face Hub."),
    "tcm": ("tcmbench.commands.tcm", "tcm", "TCM utilities (convert CLIP weights)."),
    "import": (
        "tcmbench.commands.importers",
        "import_",
        "Import checkpoints from other codebases (official TCM).",
    ),
    "plugins": (
        "tcmbench.commands.plugins",
        "plugins",
        "List installed plugins, their hooks and versions.",
    ),
}


class LazyGroup(click.Group):
    """A click group that imports core sub-commands on first use and asks
    plugins for theirs once."""

    _plugins_loaded = False

    def _load_plugin_commands(self) -> None:
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from tcmbench.contract.registry import get_plugin_manager

        get_plugin_manager().hook.register_commands(cli=self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load_plugin_commands()
        names = set(super().list_commands(ctx)) | {
            n for n in CORE_COMMANDS if self._module_exists(CORE_COMMANDS[n][0])
        }
        return sorted(names)

    @staticmethod
    def _module_exists(modname: str) -> bool:
        import importlib.util

        return importlib.util.find_spec(modname) is not None

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in CORE_COMMANDS:
            modname, attr, _ = CORE_COMMANDS[cmd_name]
            if not self._module_exists(modname):
                return None
            command = getattr(importlib.import_module(modname), attr)
            if isinstance(command, click.Group):
                # Plugins may add sub-commands to a core group (the dbnet
                # plugin's `import ppocr`); plain commands such as `score`
                # start without the plugin manager.
                self._load_plugin_commands()
            return command
        self._load_plugin_commands()
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            if name in CORE_COMMANDS:
                rows.append((name, CORE_COMMANDS[name][2]))
            else:
                cmd = super().get_command(ctx, name)
                if cmd is not None and not cmd.hidden:
                    rows.append((name, cmd.get_short_help_str(limit=80)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="tcmbench")
@click.option("-v", "--verbose", count=True, help="More log output (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """tcmbench: evaluate, train and share scene text detectors.

    Official evaluation protocols, dataset loaders, plugin detectors (DBNet,
    ...) and the TCM CLIP module behind one flag (--tcm).
    """
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # Library code reports long work (dataset generation, heartbeats) on this
    # logger; a user waiting on it sees those lines without -v.
    logging.getLogger("tcmbench.progress").setLevel(min(level, logging.INFO))


#: Commands whose process ends as soon as they return: their output is
#: written and flushed, their files closed, no thread or atexit hook has
#: work left, and Python's teardown of numpy, shapely, click... (15-20 ms)
#: would be a tenth of a `score` run, whose speed is measured against the
#: official scripts.
QUICK_EXIT_COMMANDS = frozenset({"score"})


def _first_command(args: list[str]) -> str | None:
    """The sub-command of a command line (the first word not an option)."""
    return next((a for a in args if not a.startswith("-")), None)


def _exit_without_teardown() -> None:
    """Flush what was printed and end the process with status 0, skipping
    interpreter finalization; returns (and lets Python exit normally) if
    the output cannot be flushed, so that error is reported as usual, or
    under a profiler or tracer (``python -m cProfile -m tcmbench score``),
    which reports at exit."""
    import os

    if sys.getprofile() is not None or sys.gettrace() is not None:
        return  # a profiler or coverage tool writes its report at exit
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):
        return
    logging.shutdown()
    os._exit(0)


def main(argv: list[str] | None = None) -> Any:
    """Entry point: run the CLI, turning user errors into one-line messages."""
    import os

    from tcmbench.errors import TcmbenchError

    # OpenMP threads that spin while waiting make torch dozens of times slower
    # on a shared or oversubscribed CPU; passive waiting costs nothing on an
    # idle one. Must be set before torch is imported; the user's value wins.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    try:
        result = cli.main(args=argv, prog_name="tcmbench", standalone_mode=False)
        if argv is None and _first_command(sys.argv[1:]) in QUICK_EXIT_COMMANDS:
            _exit_without_teardown()
        return result
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except TcmbenchError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        click.echo("Interrupted.", err=True)
        sys.exit(130)
