"""Running one training: build a network from a config, fit it, checkpoint it, check its health.

- network: the model drawn from its seeds on a device, and what checkpoints need to know about it;
- loop: :func:`~frozen_slt.training.loop.fit`, the plain training loop with its reporter and checkpoint
  store hooks (a training step is :func:`~frozen_slt.training.loop.train_step`);
- optimizers: the optimizer and learning-rate schedule of a recipe;
- score_sgd: SGD on a ticket's scores whose step also moves τ (the fused score step on the CPU);
- evaluate: the accuracy of a network on the evaluation splits;
- checkpoint: checkpoint files and the store interface ``fit`` uses;
- health: the check after every epoch that the state can still give a meaningful result.

Orchestration lives elsewhere: the ``frozen-slt`` command (:mod:`frozen_slt.cli`) and the sweeps'
Ray trainable plug in through the reporter and the store.
"""
