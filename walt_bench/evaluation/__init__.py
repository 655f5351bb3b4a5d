"""walt_bench.evaluation: FVD, FID, IS and rFVD as the published references compute them.

Modules (import what you need; nothing heavy is imported here):

- ``frechet``: ``frechet_distance(mu1, sigma1, mu2, sigma2)``, ``RunningStats``, ``save_stats`` / ``load_stats``
- ``extractors``: ``build_extractor(kind, spec.eval, device)`` for ``i3d`` / ``inception`` / ``c3d`` / ``synthetic``
- ``protocols``: named settings (``ucf101_fvd``, ``k600_fvd``, ``imagenet_fid50k``, ``rfvd``, ``synthetic_fvd``)
- ``evaluate``: ``score_samples``, ``reference_statistics``, ``fd_between`` (streaming, float64)
- ``inception_score``, ``resize``, ``i3d``, ``inception``, ``c3d``, ``classifier``, ``tfhub``, ``samples``
- ``commands``: ``walt-bench eval [run|stats|fd|train-classifier]``; ``evaluate_samples(spec, samples_dir)``
"""
