"""Watch the two optimiser steps of a GAN baseline (generator side, then discriminator) during ``trainer.fit``."""

from __future__ import annotations

import torch


def watch_gan_steps(model, nets: dict[str, list[torch.nn.Parameter]]) -> dict[str, dict]:
    """Wrap the optimisers ``model.configure_optimizers`` returns (``g`` first, ``d`` second). After a fit, the result
    holds per step: ``frozen_grads`` (non-zero gradients on the other network's parameters), ``own_grads`` (how many
    of its own parameters have a gradient) and ``changed`` (``{"g": bool, "d": bool}``: which networks the step moved).
    """
    seen: dict[str, dict] = {}

    def watch(name: str, opt: torch.optim.Optimizer) -> None:
        step = opt.step

        def wrapped(*args, **kwargs):
            before = {k: [p.detach().clone() for p in ps] for k, ps in nets.items()}
            frozen = "d" if name == "g" else "g"
            seen[name] = {
                "frozen_grads": [p.grad for p in nets[frozen] if p.grad is not None and p.grad.abs().sum() > 0],
                "own_grads": sum(p.grad is not None for p in nets[name]),
            }
            result = step(*args, **kwargs)
            seen[name]["changed"] = {
                k: any(not torch.equal(a, p) for a, p in zip(before[k], ps, strict=True)) for k, ps in nets.items()
            }
            return result

        opt.step = wrapped

    configure = model.configure_optimizers

    def configure_and_watch():
        (opt_g, opt_d), schedulers = configure()
        watch("g", opt_g)
        watch("d", opt_d)
        return [opt_g, opt_d], schedulers

    model.configure_optimizers = configure_and_watch
    return seen
