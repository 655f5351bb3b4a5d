"""walt_bench.evaluation: FVD, FID, IS, KID and rFVD as the published references compute them.

Modules (import what you need; nothing heavy is imported here):

- ``protocols``: named settings (``ucf101_fvd``, ``k600_fvd``, ``imagenet_fid50k``, ``rfvd``, ``synthetic_fvd``),
  ``resolve`` (spec overrides applied) and ``check_clips`` (clip geometry vs the protocol)
- ``evaluate``: ``prepare`` (check, quantise, window, resize), ``MetricAccumulator``, ``score_samples``
- ``reference``: ``reference_statistics`` (given file, samples' references, or data; cached per identity)
- ``frechet``: ``frechet_distance(mu1, sigma1, mu2, sigma2)``, ``RunningStats``
- ``statsfile``: reference-statistics files and their identity (``read_stats``, ``write_stats``, ``check_matches``)
- ``extractors``: ``build_extractor(kind, spec.eval, device)`` for ``i3d`` / ``inception`` / ``c3d`` / ``synthetic``
- ``rfvd``: the tokenizer's streaming reconstruction FVD; ``kid``: KID through torchmetrics
- ``convert``: MAGVIT's flax C3D -> state dict; ``sample_bias``: how the Fréchet distance moves with N
- ``inception_score``, ``resize``, ``i3d``, ``inception``, ``c3d``, ``classifier``, ``tfhub``, ``samples``
- ``commands``: ``walt-bench eval [run|stats|fd|train-classifier|convert-c3d]``; ``evaluate_samples(spec, dir)``
"""
