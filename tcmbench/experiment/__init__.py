"""Experiments as commands: grids of train/evaluate cells (``experiment run``)
and their paper-shaped tables and plots (``experiment report``)."""
