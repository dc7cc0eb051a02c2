"""The `regression` task: one text or a text pair -> a score (ASSIN 2 STS, your CSV)."""

import numpy as np
import tensorflow as tf

from keras_bert.models import BertRegressor
from keras_bert.tasks.classification import Classification, score_rows
from keras_bert.trainer import metrics as task_metrics


class Regression(Classification):
    """Text or pair regression: Pearson, Spearman and MSE; the exported `score`."""

    name = "regression"
    model_class = BertRegressor
    output_name = "score"
    regression = True

    def build_model(self, encoder, labels=None, dropout=None):
        return BertRegressor(encoder, dropout=dropout)

    def evaluate(self, data, outputs, labels=None, options=None):
        gold, scores = np.asarray(data.reference.labels, np.float64), np.asarray(outputs, np.float64).reshape(-1)
        metrics = {"pearson": task_metrics.pearson(gold, scores), "spearman": task_metrics.spearman(gold, scores),
                   "mse": float(np.mean((gold - scores) ** 2))}
        return metrics, [(text, float(g), float(p)) for text, g, p in zip(score_rows(data.reference), gold, scores)]

    def postprocess(self, module, texts):
        return {"score": tf.reshape(tf.cast(module.run_model(module.pack_texts(texts)), tf.float32), [-1])}
