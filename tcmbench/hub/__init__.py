"""Checkpoints as folders and Hub repositories: reading, writing, pushing and fetching them."""
