"""The task kinds' names, in one place (importable without TensorFlow's text ops)."""

KINDS = ("classification", "regression", "token_classification", "question_answering", "embedding", "fill_mask")
# The kinds `training.finetune` fits (the others have no loss of their own).
TRAINABLE_KINDS = ("classification", "regression", "token_classification", "question_answering")
