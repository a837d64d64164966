"""Training: the trainer (single process and torchrun DDP), optimizers
(Adam, AdamW, SGD, Ranger), the poly learning-rate schedule, the seeded
step-indexed sampler and resumable training state."""
