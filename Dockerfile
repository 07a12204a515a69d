# CPU image: installs seqrec the same way as the README and runs the test suite.
#   docker build -t seqrec . && docker run --rm seqrec
# Train or transcribe by overriding the command, e.g.
#   docker run --rm -v "$PWD/exp:/app/exp" seqrec .venv/bin/python recipes/quickstart/run.py
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY . /app
RUN python3 -m venv .venv && .venv/bin/pip install -q -e '.[dev]'
CMD [".venv/bin/python", "-m", "pytest", "-q"]
