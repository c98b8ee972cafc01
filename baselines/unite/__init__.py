"""UNITE: unbalanced feature transport for exemplar-based image translation.

Zhan, Yu, Cui, Zhang, Lu, Pan, Zhang, Ma, Xie and Miao, "Unbalanced Feature Transport for Exemplar-based Image
Translation", CVPR 2021; official code https://github.com/fnzhan/UNITE (no licence file: nothing of it ships here).
Re-implemented from what the released code computes.

- :mod:`.transport`: the Sinkhorn potentials of the geomloss copy UNITE vendors, and the transport plan
- :mod:`.correspondence`: the multi-level adaptors, marginal and confidence branches, the transport warp
- :mod:`.generator`: the SEACE generator
- :mod:`.model`: the LightningModule (CoCosNet's losses and schedule with UNITE's mask term)
- :mod:`.released`: the user's download of the released model, loaded strictly
"""
