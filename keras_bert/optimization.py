"""Optimizers for BERT: AdamW and LAMB with BERT's weight-decay exclusions, warmup + decay schedules.

BERT never decays LayerNorm parameters or biases. Keras names them `gamma`,
`beta` and `bias`; the exclusions are matched against each variable's path, so
`.../layer_norm/gamma` and `.../dense/bias` are excluded while `.../kernel`
and the embedding matrices are decayed.

Example:
>>> schedule = WarmupDecaySchedule(1e-4, warmup_steps=10_000, total_steps=1_000_000)
>>> optimizer = create_optimizer("lamb", learning_rate=schedule, weight_decay=0.01)
"""

import re

import keras
from keras import ops

# Substrings of variable paths that BERT never weight-decays (LayerNorm gamma/beta and biases).
WEIGHT_DECAY_EXCLUDED = ("gamma", "beta", "bias", "layer_norm", "LayerNorm")

OPTIMIZERS = ("adamw", "lamb", "adam", "sgd")
# The Keras dtype policies a job may train or export under (`mixed_precision`; None means "float32").
PRECISIONS = ("float32", "mixed_bfloat16", "mixed_float16")


def excluded_from_weight_decay(variable, patterns=WEIGHT_DECAY_EXCLUDED):
    """Whether BERT's recipe leaves `variable` without weight decay.

    Args:
        variable: `keras.Variable`. Matched by its `path` (or `name`).
        patterns: tuple of str. Substrings (regular expressions) of excluded paths.
    """
    path = getattr(variable, "path", None) or variable.name
    return any(re.search(pattern, path) for pattern in patterns)


@keras.saving.register_keras_serializable(package="keras_bert")
class WarmupDecaySchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warmup from 0 to `peak_learning_rate`, then polynomial decay to `end_learning_rate`.

    `power=1.0` is linear decay (BERT and Hugging Face's `get_linear_schedule_with_warmup`).
    The decay runs from the end of warmup to `total_steps` and stays at
    `end_learning_rate` afterwards.

    Args:
        peak_learning_rate: float. Learning rate at the end of warmup.
        warmup_steps: int. Steps of linear warmup (0: none).
        total_steps: int. Step at which the decay reaches `end_learning_rate`.
        end_learning_rate: float. Final learning rate.
        power: float. Decay exponent; 1.0 is linear.
    """

    def __init__(self, peak_learning_rate, warmup_steps, total_steps, end_learning_rate=0.0, power=1.0,
                 name="warmup_decay"):
        if total_steps <= 0 or warmup_steps < 0 or warmup_steps > total_steps:
            raise ValueError(f"WarmupDecaySchedule needs 0 <= warmup_steps ({warmup_steps}) <= "
                             f"total_steps ({total_steps}) and total_steps > 0")
        self.peak_learning_rate = float(peak_learning_rate)
        self.warmup_steps = int(warmup_steps)
        self.total_steps = int(total_steps)
        self.end_learning_rate = float(end_learning_rate)
        self.power = float(power)
        self.name = name

    def __call__(self, step):
        step = ops.cast(step, "float32")
        warmup = ops.cast(max(self.warmup_steps, 1), "float32")
        warmup_lr = self.peak_learning_rate * step / warmup
        decay_steps = ops.cast(max(self.total_steps - self.warmup_steps, 1), "float32")
        progress = ops.clip((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        decay_lr = (self.peak_learning_rate - self.end_learning_rate) * ops.power(1.0 - progress, self.power)
        decay_lr = decay_lr + self.end_learning_rate
        return ops.where(step < self.warmup_steps, warmup_lr, decay_lr)

    def get_config(self):
        return {"peak_learning_rate": self.peak_learning_rate, "warmup_steps": self.warmup_steps,
                "total_steps": self.total_steps, "end_learning_rate": self.end_learning_rate,
                "power": self.power, "name": self.name}


@keras.saving.register_keras_serializable(package="keras_bert")
class Lamb(keras.optimizers.Optimizer):
    """LAMB (You et al., 2019, https://arxiv.org/abs/1904.00962) as used for BERT pretraining.

    Per variable: Adam moments, bias-corrected; `update = m_hat / (sqrt(v_hat) + eps)
    + weight_decay * w`; the step is scaled by the trust ratio `||w|| / ||update||`.
    Variables matching `exclude_from_weight_decay` patterns (LayerNorm, bias) get
    neither weight decay nor the trust ratio, as in the reference implementation.

    Args:
        learning_rate: float or `LearningRateSchedule`.
        weight_decay_rate: float. Weight decay added to the update.
        beta_1: float. First-moment decay.
        beta_2: float. Second-moment decay.
        epsilon: float. Added to the root of the second moment.
        exclude_from_weight_decay: tuple of str. Variable path patterns without decay or trust ratio.
        **kwargs: `keras.optimizers.Optimizer` arguments (`global_clipnorm`,
            `gradient_accumulation_steps`, ...).
    """

    def __init__(self, learning_rate=1e-3, weight_decay_rate=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                 exclude_from_weight_decay=WEIGHT_DECAY_EXCLUDED, name="lamb", **kwargs):
        kwargs.pop("weight_decay", None)  # Decay is part of the LAMB update, not Keras' decoupled decay.
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.weight_decay_rate = float(weight_decay_rate)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.exclude_from_weight_decay_patterns = tuple(exclude_from_weight_decay)

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._momentums, self._velocities = self.add_optimizer_variables(var_list, ["momentum", "velocity"])

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        lr = ops.cast(learning_rate, dtype)
        gradient = ops.cast(gradient, dtype)
        local_step = ops.cast(self.iterations + 1, dtype)
        m = self._momentums[self._get_variable_index(variable)]
        v = self._velocities[self._get_variable_index(variable)]
        self.assign(m, self.beta_1 * m + (1.0 - self.beta_1) * gradient)
        self.assign(v, self.beta_2 * v + (1.0 - self.beta_2) * ops.square(gradient))
        m_hat = m / (1.0 - ops.power(ops.cast(self.beta_1, dtype), local_step))
        v_hat = v / (1.0 - ops.power(ops.cast(self.beta_2, dtype), local_step))
        update = m_hat / (ops.sqrt(v_hat) + self.epsilon)
        if excluded_from_weight_decay(variable, self.exclude_from_weight_decay_patterns):
            self.assign_sub(variable, lr * update)
            return
        update = update + self.weight_decay_rate * variable
        weight_norm = ops.sqrt(ops.sum(ops.square(variable)))
        update_norm = ops.sqrt(ops.sum(ops.square(update)))
        trust_ratio = ops.where(ops.logical_and(weight_norm > 0, update_norm > 0),
                                weight_norm / ops.maximum(update_norm, 1e-30), ops.ones_like(weight_norm))
        self.assign_sub(variable, trust_ratio * lr * update)

    def get_config(self):
        config = super().get_config()
        config.update({"weight_decay_rate": self.weight_decay_rate, "beta_1": self.beta_1, "beta_2": self.beta_2,
                       "epsilon": self.epsilon,
                       "exclude_from_weight_decay": list(self.exclude_from_weight_decay_patterns)})
        return config


@keras.saving.register_keras_serializable(package="keras_bert")
class AdamW(keras.optimizers.AdamW):
    """Keras' `AdamW` (same arguments, same math) with a fused update on the TensorFlow backend.

    Keras writes Adam as about ten elementwise ops per variable, each a pass over
    the variable; on a CPU the update of a BERT's 30522-row embedding then costs
    as much as a third of a fine-tuning step. On TensorFlow this optimizer applies
    the decoupled weight decay as one multiply and the Adam step as one
    `ResourceApplyAdam` kernel (the formula Keras uses: epsilon added to
    `sqrt(v)`, bias correction folded into the step size). Other backends, and
    `amsgrad=True`, run Keras' own update.

    Args:
        **kwargs: `keras.optimizers.AdamW` arguments.
    """

    def _fused(self):
        return keras.backend.backend() == "tensorflow" and not self.amsgrad

    def _apply_weight_decay(self, variables):
        if not self._fused():
            super()._apply_weight_decay(variables)
        # Else decayed in `update_step`, inside the same per-variable update.

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused():
            return super().update_step(gradient, variable, learning_rate)
        import tensorflow as tf

        dtype = variable.dtype
        lr = tf.cast(learning_rate, dtype)
        if self.weight_decay and self._use_weight_decay(variable):
            variable.assign(variable * (1.0 - lr * tf.cast(self.weight_decay, dtype)))
        local_step = tf.cast(self.iterations + 1, dtype)
        beta_1, beta_2 = tf.cast(self.beta_1, dtype), tf.cast(self.beta_2, dtype)
        index = self._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=variable.handle, m=_tf_variable(self._momentums[index]).handle,
            v=_tf_variable(self._velocities[index]).handle, beta1_power=tf.pow(beta_1, local_step),
            beta2_power=tf.pow(beta_2, local_step), lr=lr, beta1=beta_1, beta2=beta_2,
            epsilon=tf.cast(self.epsilon, dtype), grad=tf.cast(tf.convert_to_tensor(gradient), dtype),
            use_locking=False)


def _tf_variable(variable):
    return variable.value if isinstance(variable, keras.Variable) else variable


def set_mixed_precision(policy):
    """Sets the global Keras dtype policy before models are built.

    Args:
        policy: str or None. None or one of `PRECISIONS`: `"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`.
    """
    if policy is not None and policy not in PRECISIONS:
        raise ValueError(f"mixed_precision must be None or one of {PRECISIONS}, got {policy!r}")
    keras.mixed_precision.set_global_policy(policy or "float32")


def create_optimizer(name="adamw", learning_rate=1e-4, weight_decay=0.01, beta_1=0.9, beta_2=0.999, epsilon=1e-6,
                     clipnorm=1.0, accumulation_steps=1, mixed_precision=None):
    """BERT's optimizer: AdamW or LAMB without weight decay on LayerNorm and bias variables.

    Args:
        name: str. One of `"adamw"`, `"lamb"`, `"adam"`, `"sgd"`.
        learning_rate: float or `keras.optimizers.schedules.LearningRateSchedule`.
        weight_decay: float. Decoupled weight decay (AdamW) or LAMB's decay rate.
        beta_1: float. Adam beta 1.
        beta_2: float. Adam beta 2.
        epsilon: float. Adam epsilon.
        clipnorm: float or None. Global gradient-norm clipping (BERT clips at 1.0).
        accumulation_steps: int. Gradients of this many batches are averaged before
            each update (Keras' `gradient_accumulation_steps`); 1 disables it.
        mixed_precision: str or None. With `"mixed_float16"` the optimizer is
            wrapped in a dynamic `LossScaleOptimizer`.

    Returns:
        A `keras.optimizers.Optimizer`.
    """
    if not isinstance(name, str):
        raise TypeError(f"create_optimizer's name is an optimizer name ({', '.join(OPTIMIZERS)}), got {name!r}; "
                        "pass the learning rate as learning_rate=")
    name = name.lower()
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; expected one of {OPTIMIZERS}")
    if int(accumulation_steps) < 1:
        raise ValueError(f"accumulation_steps must be >= 1, got {accumulation_steps}")
    common = dict(learning_rate=learning_rate, global_clipnorm=clipnorm,
                  gradient_accumulation_steps=int(accumulation_steps) if int(accumulation_steps) > 1 else None)
    if name == "adamw":
        optimizer = AdamW(weight_decay=weight_decay, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **common)
        optimizer.exclude_from_weight_decay(var_names=list(WEIGHT_DECAY_EXCLUDED))
    elif name == "lamb":
        optimizer = Lamb(weight_decay_rate=weight_decay, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **common)
    elif name == "adam":
        optimizer = keras.optimizers.Adam(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, **common)
    else:
        optimizer = keras.optimizers.SGD(**common)
    if mixed_precision == "mixed_float16":
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer
