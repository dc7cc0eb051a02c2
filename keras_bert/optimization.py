"""Optimizers for BERT: AdamW with BERT's weight-decay exclusions."""

import keras

# BERT never decays LayerNorm parameters or biases (Keras names: gamma, beta, bias).
WEIGHT_DECAY_EXCLUDED = ("gamma", "beta", "bias", "layer_norm")


def create_optimizer(learning_rate=1e-4, weight_decay=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                     clipnorm=1.0):
    """AdamW as in BERT: decoupled weight decay, except on LayerNorm and bias variables.

    Args:
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: float. Decoupled weight-decay rate.
        beta_1: float. Adam beta 1.
        beta_2: float. Adam beta 2.
        epsilon: float. Adam epsilon.
        clipnorm: float or None. Per-variable gradient norm clipping.
    """
    optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay, beta_1=beta_1,
                                       beta_2=beta_2, epsilon=epsilon, clipnorm=clipnorm)
    optimizer.exclude_from_weight_decay(var_names=list(WEIGHT_DECAY_EXCLUDED))
    return optimizer
