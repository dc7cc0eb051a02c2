"""The task layer: one module per task kind, each owning its data reading, Keras model, metrics,
prediction writer and export post-processing (TensorFlow; the models themselves stay backend-agnostic).

Example:
>>> from keras_bert import tasks
>>> tasks.KINDS[-2:]
('fill_mask', 'summarization')
>>> tasks.get("classification").model_class.__name__
'BertClassifier'
"""

from keras_bert.tasks.base import DataOptions, TaskData, TaskKind, forward, write_metrics
from keras_bert.tasks.classification import Classification
from keras_bert.tasks.embedding import Embedding
from keras_bert.tasks.fill_mask import MASK_TEXT, FillMask
from keras_bert.tasks.question_answering import QuestionAnswering, answer, best_answers, best_spans
from keras_bert.tasks.regression import Regression
from keras_bert.tasks.summarization import Summarization
from keras_bert.tasks.token_classification import TagTable, TokenClassification, entity_scores, group_entities, predict_tags

_KINDS = {kind.name: kind for kind in (Classification(), Regression(), TokenClassification(), QuestionAnswering(),
                                       Embedding(), FillMask(), Summarization())}
KINDS = tuple(_KINDS)
# The kinds `training.finetune` fits (the others have no loss of their own).
TRAINABLE_KINDS = tuple(name for name, kind in _KINDS.items() if kind.trainable)


def get(name):
    """The `TaskKind` called `name`; a `ValueError` lists the kinds otherwise."""
    if name not in _KINDS:
        raise ValueError(f"unknown task {name!r}; expected one of {', '.join(KINDS)}")
    return _KINDS[name]


def for_model(model):
    """The `TaskKind` of a keras_bert model: its own task, or `embedding` for a bare encoder."""
    from keras_bert.models import BertEncoder

    if isinstance(model, BertEncoder):
        return _KINDS["embedding"]
    if getattr(model, "task_kind", None) in _KINDS:
        return _KINDS[model.task_kind]
    raise ValueError(f"{type(model).__name__} is not a keras_bert task model")
