"""The inference server: every model of a repository over the Open Inference Protocol v2
(``liam-core serve``).

.venv/bin/python experiments/serve.py serve.repository=models              # 127.0.0.1:8000
.venv/bin/python experiments/serve.py serve.repository=models serve.port=8500 serve.token=...

Publish models with `experiments/train.py export.repository=models export.name=NAME`.
"""

from liam_core.cli import serve

if __name__ == "__main__":
    serve()
