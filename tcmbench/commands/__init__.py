"""CLI sub-commands, one module each, imported lazily by ``tcmbench.cli``."""
