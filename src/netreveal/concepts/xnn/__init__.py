"""XNN: an explanation network that embeds a deep layer's activation into a few x-features.

The activation f (B, D) of a chosen layer (default: the input of the model's final linear
classifier, i.e. the pooled final feature map or penultimate vector; a named spatial layer is
average-pooled over positions, a token layer over its patch tokens) is embedded by a sparse
reconstruction autoencoder:
- encoder: x = ReLU(E (f - mu) / sigma + b), K x-features (default 5), non-negative;
- decoder: f_hat = x B_unit + d, the rows of B_unit (unit-norm concept bases) spanning the concepts;
- prediction from the x-features (``faithful``):
  ``head``   y_hat = classifier(f_hat), the model's own final linear layer (frozen), so the
             x-features explain the model in its own feature space;
  ``linear`` y_hat = A x + a, a learned linear map (for layers the classifier does not read).
  Either way y_hat is affine in x, so the contribution of x-feature j to class c is exactly
  x_j * M[c, j] (M = W_classifier B_unit^T, or A) and the logits are their sum plus a constant.

Loss = KL(softmax(y) || softmax(y_hat))            faithfulness to the original prediction
     + sparsity * mean_i sum_j x_ij / s             L1 on x-features (s: the features' RMS spread)
     + pull_away * mean_{i != j} cos^2(b_i, b_j)    concept bases pushed towards orthogonality
     + reconstruction * ||f - f_hat||^2 / s^2       optional (default 0)

Faithfulness is reported as the agreement of argmax y_hat with the model's argmax y. Each
x-feature is shown by a Grad-CAM style heatmap (gradient of its pre-activation with respect to
the final feature map, averaged over positions, weighting that map's channels) and by its
top-activating training images.

Modules: :mod:`.net` (the network, saving and loading), :mod:`.layers` (the layers it reads),
:mod:`.train` (training, top images), :mod:`.explain` (explanations, faithfulness).
"""

from netreveal.concepts.xnn.explain import XNNExplanation, explain_xnn, faithfulness
from netreveal.concepts.xnn.layers import (
    FAITHFUL,
    activation_vector,
    find_map_layer,
    read_activations,
    resolve_xnn_layer,
)
from netreveal.concepts.xnn.net import XNN, XNNRecord, load_xnn, pull_away, save_xnn
from netreveal.concepts.xnn.train import mine_top_images, train_xnn

__all__ = [
    "FAITHFUL",
    "XNN",
    "XNNExplanation",
    "XNNRecord",
    "activation_vector",
    "explain_xnn",
    "faithfulness",
    "find_map_layer",
    "load_xnn",
    "mine_top_images",
    "pull_away",
    "read_activations",
    "resolve_xnn_layer",
    "save_xnn",
    "train_xnn",
]
