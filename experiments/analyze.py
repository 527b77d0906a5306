"""The main job: analyze metrics through ALDA on a configured mesh (``liam-core analyze``).

.venv/bin/python experiments/analyze.py                          # synthetic, 1e6 records, cpu8
.venv/bin/python experiments/analyze.py mesh=cpu1 experiment=small
.venv/bin/python experiments/analyze.py -m mesh=cpu1,cpu8,cpu4x2 # same digests on every mesh
"""

from liam_core.cli import analyze

if __name__ == "__main__":
    analyze()
