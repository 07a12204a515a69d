"""FSDD connected digit strings: import, train a phone model, score digit error rate.

    python recipes/spoken_digits/run.py --data-dir ../shared/data/fsdd \\
        -o speechocean_dir='"../shared/data/speechocean762"' -o speechocean_all=true

The importer joins 2-7 takes of one speaker into strings; ``theo`` is held out
(``test``: a speaker never seen in training) and takes 0-4 of the other speakers
form ``test_seen`` (unseen takes of training speakers). ``speechocean_dir`` adds
speechocean762's digit-only sentences (many more speakers) to training, and
``speechocean_all`` all of its other train sentences too (measured: 7.2 % digit
errors on ``theo`` with them and this config, 15.6 % with the digit sentences
alone and the earlier, smaller 3x192 model).
Digit error rate is the ``wer`` of the phone output parsed with the digit lexicon.

With ``--init-from exp/speech_phones/model/best.pt`` the speechocean762 phone
model (about 125 speakers) is fine-tuned instead (``finetune.toml``). Measured:
24.8 % digit errors on ``theo`` against 15.6 % for the plain recipe of then
(digit sentences only, 3x192), so it is not the default; that phone model's
16 kHz frontend (global statistics then, per-utterance now) sees FSDD's 8 kHz
audio, empty above 4 kHz.
"""

from __future__ import annotations

import sys
from pathlib import Path

from seqrec.recipe import recipe_main


def main() -> None:
    argv = sys.argv[1:]
    config = "config.toml"
    if "--init-from" in argv:
        i = argv.index("--init-from")
        model = argv[i + 1]
        argv = [*argv[:i], *argv[i + 2 :], "--set", f"train.init_from={model!r}"]
        config = "finetune.toml"
    recipe_main(
        description=__doc__,
        corpus="fsdd",
        config=Path(__file__).with_name(config),
        default_out="exp/spoken_digits",
        eval_splits=("test", "test_seen"),
        eval_lexicon="digits",
        argv=argv,
    )


if __name__ == "__main__":
    main()
