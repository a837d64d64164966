"""The plugin contract in one place: the hook specifications, the registry that
loads plugins, and the torch-free declarations a plugin registers
(DetectorSpec, options, fidelity rows)."""
