"""Checks on everything that comes from outside: file-system names and destinations
(paths), documents and their schemas (validation, checkpoint_schema) and resource
limits (run_limits). Everything above relies on them; they rely only on the
plugin contract and errors."""
