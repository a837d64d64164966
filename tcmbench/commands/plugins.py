"""``tcmbench plugins``: what is installed, which hooks each implements."""

from __future__ import annotations

import json

import click

from tcmbench.commands._options import json_option


@click.command()
@json_option("the list of plugins")
def plugins(json_out: str | None) -> None:
    """List every plugin (core and installed) with its hooks and version."""
    from tcmbench.contract.registry import describe_plugins
    from tcmbench.safety.paths import is_stdout, write_report

    rows = describe_plugins()
    if json_out is not None:
        write_report(json_out, json.dumps(rows, indent=2) + "\n")
    err = is_stdout(json_out)  # stdout then carries the JSON alone
    click.echo("| plugin | version | core | hooks |", err=err)
    click.echo("|---|---|---|---|", err=err)
    for r in rows:
        core = "yes" if r["core"] else "no"
        line = f"| {r['name']} | {r['version']} | {core} | {', '.join(r['hooks'])} |"
        click.echo(line, err=err)
