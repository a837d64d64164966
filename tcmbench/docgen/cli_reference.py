"""Render the full CLI reference (every command and option) as markdown.

docs/cli.md is generated from this (``python -m tcmbench.docgen.cli_reference
> docs/cli.md``) and a test fails when the file is out of date, so the
documentation of every command and option cannot drift from the code.
"""

from __future__ import annotations

import click


def _walk(
    cmd: click.Command, path: list[str], ctx: click.Context
) -> list[tuple[list[str], click.Command, click.Context]]:
    out = [(path, cmd, ctx)]
    if isinstance(cmd, click.Group):
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is None or sub.hidden:
                continue
            sub_ctx = click.Context(sub, info_name=name, parent=ctx)
            out.extend(_walk(sub, [*path, name], sub_ctx))
    return out


def render() -> str:
    from tcmbench.cli import cli

    root = click.Context(cli, info_name="tcmbench")
    lines = [
        "# tcmbench command reference",
        "",
        "Generated from the CLI itself (`python -m tcmbench.docgen.cli_reference > docs/cli.md`);",
        "`tests/test_cli_docs.py` fails when this file is out of date.",
        "",
    ]
    for path, cmd, ctx in _walk(cli, [], root):
        title = " ".join(["tcmbench", *path])
        lines += [f"## `{title}`", "", "```text", cmd.get_help(ctx).rstrip(), "```", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    import os

    os.environ.setdefault("COLUMNS", "100")
    print(render(), end="")
