"""Overrides that shrink the smoke spec so every stage (data -> tokenizer -> ... -> metrics) runs in seconds:
the shared setting of the end-to-end tests of the demo, the DVC pipeline and sweeps (not a test module)."""

TINY = [
    "data.num_frames=5",
    "data.height=16",
    "data.width=16",
    "tokenizer.f_t=2",
    "tokenizer.channels=8",
    "tokenizer.num_groups=4",
    "tokenizer.eval_clips=4",
    "tokenizer.train.steps=2",
    "tokenizer.train.ckpt_every=2",
    "train.steps=2",
    "train.ckpt_every=2",
    "train.batch_size=4",
    "diffusion.sample_steps=2",
    "model.st_window=[3,2,2]",
    "eval.num_samples=4",
    "eval.classifier_epochs=1",
]
