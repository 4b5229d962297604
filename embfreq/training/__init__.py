"""One training run: config checks, building the objects, the run dir, callbacks, checkpoints, the
resume protocol, the result record, and the runtime settings (threads, device, optimiser)."""
