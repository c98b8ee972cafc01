"""MIDMs: matching interleaved diffusion models for exemplar-based image translation.

Seo, Lee, Cho, Lee, Kim, "MIDMs: Matching Interleaved Diffusion Models for Exemplar-based Image
Translation", AAAI 2023 (arXiv:2209.11047); official code https://github.com/cvlab-kaist/MIDMs.
Rebuilt on diffusers (autoencoders, latent UNet, DDIM scheduler) and Lightning; nothing is copied.

One module per concern:

- ``prior``: the latent diffusion prior (autoencoder, UNet, scheduler): built, loaded or converted;
- ``ldm_convert``: CompVis LDM checkpoint keys -> diffusers keys;
- ``matching``: the matching step: memory-linear correlation and soft warp, soft flows, the
  cycle-consistency confidence mask;
- ``encoders``: the semantic / real-image / iteration encoders and the shared trunk that feed it;
- ``sampler``: the interleaved DDIM sampler and its timestep grids;
- ``model``: the LightningModule (training losses, phases, ``translate`` and ``warp``).
"""
