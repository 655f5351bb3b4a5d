"""walt_bench: W.A.L.T (Gupta et al., "Photorealistic Video Generation with Diffusion Models") in PyTorch.

The package follows the paper's data flow: ``data`` -> ``tokenizer`` -> ``denoiser`` + ``diffusion``
-> ``evaluation`` -> ``report``; ``engine`` trains both stages and ``spec`` describes every run.
"""

__version__ = "0.1.0"
