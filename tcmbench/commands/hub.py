"""``tcmbench hub push|pull``: share checkpoints through the Hugging Face Hub."""

from __future__ import annotations

import click


@click.group()
def hub() -> None:
    """Push and pull checkpoints on the Hugging Face Hub.

    Uses huggingface_hub's configuration: HF_TOKEN / `hf auth login` for
    pushing, HF_ENDPOINT for a mirror, HF_HUB_OFFLINE=1 to use the cache only.
    """


@hub.command()
@click.argument("folder", type=click.Path(exists=True, file_okay=False))
@click.argument("repo_id")
@click.option("--revision", default=None, help="Branch to push to (default: main).")
@click.option("--private", is_flag=True, help="Create the repo as private.")
@click.option("--message", default=None, help="Commit message.")
def push(
    folder: str, repo_id: str, revision: str | None, private: bool, message: str | None
) -> None:
    """Upload checkpoint FOLDER (config.json, model.safetensors, README.md) to REPO_ID."""
    from tcmbench.hub import checkpoints as hub_lib

    url = hub_lib.push(folder, repo_id, revision=revision, private=private, commit_message=message)
    click.echo(f"pushed {folder} to {repo_id}: {url}")


@hub.command()
@click.argument("repo_id")
@click.option("--revision", default=None, help="Branch, tag or commit (default: main).")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Copy the checkpoint here (default: leave it in the HF cache).",
)
def pull(repo_id: str, revision: str | None, out_dir: str | None) -> None:
    """Download checkpoint REPO_ID (hf://REPO_ID also works with --weights)."""
    from tcmbench.hub import checkpoints as hub_lib
    from tcmbench.safety.paths import check_destination

    if out_dir is not None:  # a file, device, FIFO or link: one line, before downloading
        check_destination(out_dir, "--out")
    path = hub_lib.pull(repo_id.removeprefix("hf://"), revision=revision, out_dir=out_dir)
    click.echo(str(path))
