"""The training job: train a model under ALDA with checkpoints (``liam-core train``).

.venv/bin/python experiments/train.py experiment=anomaly                 # autoencoder, precision/recall/F1
.venv/bin/python experiments/train.py experiment=anomaly tracking=mlflow # also an MLflow store (SQLite)
.venv/bin/python experiments/train.py model=mlp_classifier optim=adamw_cosine
.venv/bin/python experiments/train.py -m mesh=cpu1,cpu8 experiment=anomaly   # same digests on every mesh
.venv/bin/python experiments/train.py hparams_search=anomaly_optuna      # Optuna model selection

Started again with the same `hydra.run.dir`, a run resumes from its newest usable checkpoint.
"""

from liam_core.cli import train

if __name__ == "__main__":
    train()
