"""InfoDisent: an interpretable head on the final feature map of a frozen backbone.

For a feature map x (B, D, h, w):
- an orthogonal U = matrix_exp(S - S^T) (S starts at 0, so U starts as the identity) mixes the D
  channels at every position: J = U x, one *component* J_k per row of U;
- signed pooling per component: v_k = max_p ReLU(J_k)(p) - max_p ReLU(-J_k)(p) over positions p;
  while training each max is relaxed with a Gumbel softmax over positions,
  max_p z_p ~ sum_p z_p softmax((z + g) / tau)_p with Gumbel noise g (seeded) and temperature tau;
- logits = W v with non-negative weights W (C, D) and no bias, so a class logit is exactly the sum
  of its components' contributions W[c, k] * v_k.

W >= 0 is kept by projection: after every optimizer step W is clamped at 0 (so weights can be
exactly 0 and come back when their gradient turns), and the forward pass uses ``W.clamp_min(0)``
(gradient passed straight through) so the weights in use are non-negative even in a training
loop that forgets the projection.
Only S and W train; the backbone stays frozen and in eval mode.

An explanation of an image for class c ranks components by W[c, k] * v_k and shows, for each, the
region it fired on (argmax cell box and its map upsampled; the positive side for v_k >= 0, the
negative side otherwise) beside its prototypes: the training images where that side is strongest.

Modules: :mod:`.head` (the head, saving and loading), :mod:`.train` (training, prototypes),
:mod:`.explain` (explanations), :mod:`.quality` (accuracy, part purity).
"""

from netreveal.concepts.infodisent.explain import (
    InfoDisentExplanation,
    explain_infodisent,
    explanation_size,
)
from netreveal.concepts.infodisent.head import (
    InfoDisentHead,
    InfoDisentRecord,
    extractor_for,
    gumbel_max,
    load_head,
    save_head,
    signed_pool,
)
from netreveal.concepts.infodisent.quality import (
    accuracy,
    component_maps,
    purity_vs_channels,
    top_components,
)
from netreveal.concepts.infodisent.train import mine_prototypes, train_infodisent

__all__ = [
    "InfoDisentExplanation",
    "InfoDisentHead",
    "InfoDisentRecord",
    "accuracy",
    "component_maps",
    "explain_infodisent",
    "explanation_size",
    "extractor_for",
    "gumbel_max",
    "load_head",
    "mine_prototypes",
    "purity_vs_channels",
    "save_head",
    "signed_pool",
    "top_components",
    "train_infodisent",
]
