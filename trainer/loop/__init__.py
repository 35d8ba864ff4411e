"""The training loop's parts, one concern per module: schedule, sampler, image-feature cache, batches,
step, logging, loss guard."""
