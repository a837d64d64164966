"""The dataset layer: one sample schema, one reader per on-disk format,
dataset configs, Hugging Face ``datasets`` interop and synthetic data."""

from tcmbench.data.schema import Instance, Prediction, Sample

__all__ = ["Instance", "Prediction", "Sample"]
