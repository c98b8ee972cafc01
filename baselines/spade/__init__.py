"""SPADE with its style encoder: semantic image synthesis whose style comes from an exemplar.

Park, Liu, Wang and Zhu, "Semantic Image Synthesis with Spatially-Adaptive Normalization", CVPR 2019; official code
https://github.com/NVlabs/SPADE. Re-implemented on Lightning from the paper and from what the released code computes;
no code is copied. The generator trunk, the SPADE blocks and the multi-scale discriminator are shared with CoCosNet
(:mod:`midms.nn`).

- :mod:`.encoder`: the VAE style encoder (``--use_vae``)
- :mod:`.model`: the LightningModule (losses, alternating G/D steps, TTUR, the translate contract)
- :mod:`.released`: the released checkpoints, converted and loaded strictly
"""
