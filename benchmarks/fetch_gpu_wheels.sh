#!/usr/bin/env bash
# Run HERE (a machine that reaches PyPI), before lending time on a GPU machine that reaches no
# registry: puts the wheels nasbench needs and that machine lacks into .whl/ (git-ignored),
# for Python 3.12. The GPU machine already has torch (CUDA), pandas, rich, click, pyyaml,
# scipy, pillow, pytest, tqdm, tabulate, portalocker. Pure-Python packages published only as
# sources (fvcore, iopath, thop, yacs) are built into wheels here.
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
PURE="optuna==5.0.0 alembic==1.20.1 colorlog==6.12.0 Mako==1.4.3 termcolor==3.3.0 \
fvcore==0.1.5.post20221221 iopath==0.1.10 yacs==0.1.8 thop==0.1.1.post2209072238"
for spec in $PURE; do
  python3 -m pip wheel -q --no-deps --prefer-binary -w .whl "$spec"
done
# SQLAlchemy has compiled wheels: the one for the GPU machine's CPython 3.12 on manylinux x86_64
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl SQLAlchemy==2.1.9
ls -1 .whl
du -sh .whl
