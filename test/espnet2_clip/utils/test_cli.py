"""One CLI vocabulary: every entry point uses the common names; the old spellings still work."""

import importlib
import pkgutil
import subprocess
import sys

import pytest

import espnet2_clip.bin
from espnet2_clip.utils.cli import CLIP_ENCODER_ALIASES, OUTPUT_DIR_ALIASES, rewrite_deprecated

# (the training tasks' --sample_rate stays: it is a key of every training config and packed model)
OLD_SPELLINGS = {"--out", "--out_dir", "--output_directory", "--outdir", "--batch", "--prompt", "--sr",
                 "--clip_model", "--clip_model_name", "--clip_pretrained", "--model"}
RENAMED_MODULES = {"train_clip": "clip_train", "train_audio_classifier": "classifier_train",
                   "benchmark": "clipsep_benchmark", "extract_clip_embeddings": "query_embed",
                   "extract_bert_embeddings": "query_embed"}


def test_rewrite_deprecated(caplog):
    argv = ["--out", "a", "--out_dir=b", "--clip_model", "m", "--clip_pretrained=none", "--keep", "--out"]
    aliases = dict(OUTPUT_DIR_ALIASES, **CLIP_ENCODER_ALIASES)
    assert rewrite_deprecated(argv, aliases) == [
        "--output_dir", "a", "--output_dir=b", "--query_encoder_conf", "model_name=m",
        "--query_encoder_conf", "pretrained=none", "--keep", "--output_dir"]
    assert "--out is deprecated" in caplog.text and "use --output_dir" in caplog.text
    assert rewrite_deprecated(["--clip_model"], aliases) == ["--clip_model"]  # argparse names the missing value
    assert rewrite_deprecated(["--note", "text --out"], aliases) == ["--note", "text --out"]


def _parsers():
    for info in pkgutil.iter_modules(espnet2_clip.bin.__path__):
        if info.name in RENAMED_MODULES:
            continue
        module = importlib.import_module(f"espnet2_clip.bin.{info.name}")
        if hasattr(module, "get_parser"):
            yield info.name, module.get_parser()


def test_every_entry_point_uses_the_common_names():
    checked = 0
    for name, parser in _parsers():
        options = {opt for action in parser._actions for opt in action.option_strings}
        for sub in (a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction"):
            for subparser in sub.choices.values():
                options |= {opt for action in subparser._actions for opt in action.option_strings}
        assert not options & OLD_SPELLINGS, (name, sorted(options & OLD_SPELLINGS))
        checked += 1
    assert checked >= 15


@pytest.mark.parametrize("old", ["train_clip", "benchmark"])
def test_old_module_names_still_run(old):
    proc = subprocess.run([sys.executable, "-m", f"espnet2_clip.bin.{old}", "--help"], capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout and f"{old} is deprecated" in proc.stderr
    assert f"espnet2_clip.bin.{RENAMED_MODULES[old]}" in proc.stderr
