"""The hostile-input suite (a package, so that its conftest and helpers do
not shadow ``tests/conftest.py`` under pytest's prepend import mode)."""
