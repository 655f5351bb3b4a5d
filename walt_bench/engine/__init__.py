"""walt_bench.engine: the generic training loop shared by the tokenizer and diffusion trainers.

It never imports a model package or ``tracking/``: trainers hand it modules, loss functions, a loader factory
and a tracker. Import from the submodules (``engine.loop.train``, ``engine.checkpoint``, ...); this file
imports nothing, so ``spec.py`` can import ``engine.config`` without loading torch.
"""
