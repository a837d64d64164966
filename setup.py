"""Build hook: ship the top-level ``datasets_cfg/*.yaml`` inside the package.

The dataset YAMLs live at the repository root (one obvious place to add a
benchmark), but an installed tcmbench must find them without the checkout:
this copies them to ``tcmbench/datasets_cfg/`` in the build tree, which is
where :func:`tcmbench.data.config.builtin_config_dir` looks in an install.
All other metadata is in pyproject.toml.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent


class BuildPyWithDatasetConfigs(build_py):
    def run(self) -> None:
        super().run()
        if self.editable_mode:  # editable installs read the checkout directly
            return
        target = Path(self.build_lib) / "tcmbench" / "datasets_cfg"
        target.mkdir(parents=True, exist_ok=True)
        for yaml_file in sorted((HERE / "datasets_cfg").glob("*.yaml")):
            self.copy_file(str(yaml_file), str(target / yaml_file.name))

    def get_outputs(self, include_bytecode: bool = True) -> list[str]:
        outputs = list(super().get_outputs(include_bytecode))
        if not self.editable_mode:
            target = Path(self.build_lib) / "tcmbench" / "datasets_cfg"
            outputs += [
                str(target / p.name) for p in sorted((HERE / "datasets_cfg").glob("*.yaml"))
            ]
        return outputs


setup(cmdclass={"build_py": BuildPyWithDatasetConfigs})
