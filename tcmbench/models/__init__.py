"""Detector building blocks: backbones, necks and the Detector made of named
parts. ``tcmbench.contract.spec`` is torch-free so plugins can declare
detectors without importing torch at CLI start-up."""
