"""``tcmbench plugins``: what is installed, which hooks each implements."""

from __future__ import annotations

import json

import click


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list instead of a table.")
def plugins(as_json: bool) -> None:
    """List every plugin (core and installed) with its hooks and version."""
    from tcmbench.contract.registry import describe_plugins

    rows = describe_plugins()
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("| plugin | version | core | hooks |")
    click.echo("|---|---|---|---|")
    for r in rows:
        core = "yes" if r["core"] else "no"
        click.echo(f"| {r['name']} | {r['version']} | {core} | {', '.join(r['hooks'])} |")
