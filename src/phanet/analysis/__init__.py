"""Measurements on trained PhaNets and on the training itself, which the scripts in ``benchmarks/`` run.

One module per measurement; nothing here is imported by ``phanet`` or by its command line, and each
module imports its optional dependencies (scikit-learn, matplotlib, the ``realism`` extra) only in the
functions that need them.

- :mod:`~phanet.analysis.targets`: the training targets over finished runs (``training_targets.py``);
- :mod:`~phanet.analysis.curves`: validation curves side by side (``validation_curves.py``);
- :mod:`~phanet.analysis.training_throughput`: training img/s end to end, model- and input-bound
  (``train_throughput.py``);
- :mod:`~phanet.analysis.precision`: bfloat16 against float64 gradients of the squares
  (``precision_attention.py``);
- :mod:`~phanet.analysis.realism`: real-photo expression models on the rendered faces (``realism.py``);
- :mod:`~phanet.analysis.real_photos`: a trained network on labelled real photographs that ship in
  registry packages (``real_photos.py``);
- :mod:`~phanet.analysis.head_probe`: linear probes against the heads (``head_probe.py``);
- :mod:`~phanet.analysis.head_refit`: SAL and the head trained again on frozen features (``head_refit.py``);
- :mod:`~phanet.analysis.square_swap`: S3 read with other faces' squares (``square_swap.py``).
"""
