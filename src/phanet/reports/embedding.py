"""Fig. 14: t-SNE of the joint representation f with joint SAL against the unweighted scale features."""

from __future__ import annotations

import numpy as np
import torch

from phanet.data.records import LabeledFaces
from phanet.data.transforms import preprocess
from phanet.inference import TrainedModel


def representations(model: TrainedModel, faces: LabeledFaces, indices: list[int], batch_size: int = 64) -> dict[str, np.ndarray]:
    """``f`` (Eq. 8, SAL-weighted) and ``M_F`` (Eq. 6, the plain concatenation of the fused scales'
    pooled maps) of the samples ``indices``. The fused scales are those with a scale weight (NaN for the
    others, :class:`~phanet.models.output.PhaNetOutput`)."""
    size = model.info.input_size
    weighted, fused = [], []
    for start in range(0, len(indices), batch_size):
        chunk = indices[start : start + batch_size]
        output = model.forward(torch.stack([preprocess(faces.load_image(i), size) for i in chunk]))
        weighted.append(output.features.cpu().numpy())
        scales = [
            f for s, f in enumerate(output.scale_features or []) if f is not None and not torch.isnan(output.scale_weights[0, s])
        ]
        fused.append(torch.cat(scales, dim=1).cpu().numpy())
    return {"f": np.concatenate(weighted), "M_F": np.concatenate(fused)}


def tsne(features: np.ndarray, seed: int = 0) -> np.ndarray:
    """2-D t-SNE of standardised features (perplexity adapted to small sets)."""
    from sklearn.manifold import TSNE  # about a second to import; only Fig. 14 needs it

    standardised = (features - features.mean(0)) / (features.std(0) + 1e-8)
    perplexity = float(min(30, max(5, (len(features) - 1) // 3)))
    return TSNE(n_components=2, perplexity=perplexity, init="pca", random_state=seed).fit_transform(standardised)
