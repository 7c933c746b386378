"""The lab, part 1: training TCA (views, temporal sampling, augmentations, losses, the
loop) and the training-footage builder. Imports the run time; the run time never imports it.

    config.py    TrainConfig: the recipe's settings
    augment.py   near-duplicate transformations of frames (also used by the demo corpus)
    views.py     precomputed augmented views through the CNN, and their cache
    pairs.py     supervised pairs, content and hard negatives (a pairs file or a collection)
    sampling.py  instances and views: self-supervised Sampler, supervised PairSampler
    losses.py    InfoNCE, Circle, QuadLinear-AP, chamfer and frame-matching losses
    loop.py      one training step, the loop, `train` and `train_pairs`
    footage.py   unlabelled training footage from package registries
    cli.py       `python -m engine pca` and `python -m engine train`
"""
