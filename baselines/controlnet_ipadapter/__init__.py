"""A training-free row: Stable Diffusion 1.5 with a ControlNet for the input and an IP-Adapter for the exemplar.

ControlNet (Zhang, Rao and Agrawala, ICCV 2023; https://github.com/lllyasviel/ControlNet) and IP-Adapter (Ye et al.,
2023; https://github.com/tencent-ailab/IP-Adapter), run through diffusers' pipeline and loaders as released, from local
weights only. Nothing is trained.

- :mod:`.control`: the input semantics drawn as the condition images the released ControlNets were trained on
- :mod:`.model`: the model contract (``translate``), the loading, the sampling settings and the protocol
"""
