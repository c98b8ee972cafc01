"""CoCosNet: cross-domain correspondence, then SPADE-style translation.

Zhang, Zhang, Chen, Yuan and Wen, "Cross-domain Correspondence Learning for Exemplar-based Image
Translation", CVPR 2020; official code https://github.com/microsoft/CoCosNet. Re-implemented on Lightning
from the paper and from what the released code computes; no code is copied.

- :mod:`.correspondence`: the two domain adaptors, the shared trunk and the warp (the correspondence network)
- :mod:`.generator`: the SPADE generator conditioned on the warped exemplar and the input semantics
  (the generator trunk and the multi-scale discriminator are shared with SPADE: :mod:`midms.nn`)
- :mod:`.model`: the LightningModule (losses, alternating G/D steps, TTUR, the translate/warp contract)
"""
